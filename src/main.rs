//! The spool command line: parses arguments, calls the library, maps results to exit codes.

mod cli;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use spool::engine::{Engine, EngineConfig};
use spool::media::command::gif_args;
use spool::media::probe::probe;
use spool::media::run::run_ffmpeg;
use spool::media::tools::Tools;
use spool::store::JobStatus;
use spool::workflow::{self, LoadedWorkflow};

/// spool: turns video files into a verified ladder of encodes, durably.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct StateArg {
    /// State directory (sled store, work files, chunk cache). Default: $SPOOL_STATE or ~/.local/state/spool
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Process files in the foreground: probe, chunk, encode the ladder, join, verify, publish.
    Run {
        #[arg(required = true, value_name = "INPUT")]
        inputs: Vec<PathBuf>,
        /// Workflow file; the built-in workflows/default.yaml when absent.
        #[arg(long, value_name = "FILE")]
        workflow: Option<PathBuf>,
        /// Output root; each input gets OUT/<stem>/.
        #[arg(long, value_name = "DIR", default_value = "spool-out")]
        out: PathBuf,
        #[command(flatten)]
        state: StateArg,
        /// Print one JSON result per job on stdout.
        #[arg(long)]
        json: bool,
        /// Encode again even where the cache or an earlier job already holds the result.
        #[arg(long)]
        force: bool,
        /// ffmpeg processes at once (default: the workflow's, else one per core).
        #[arg(long, value_name = "N")]
        concurrency: Option<usize>,
        /// Append each ffmpeg argv as a JSON line to FILE (the benchmark replays it).
        #[arg(long, value_name = "FILE", hide = true)]
        trace_commands: Option<PathBuf>,
        /// Keep each job's work directory (for the benchmark's replay).
        #[arg(long, hide = true)]
        keep_work: bool,
    },
    /// List jobs and their tasks from the state store.
    Status {
        /// Show one job with every task.
        job: Option<String>,
        #[command(flatten)]
        state: StateArg,
        #[arg(long)]
        json: bool,
    },
    /// Run as a service: take files dropped into the workflows' watched folders, encode
    /// them, and serve the local HTTP API. SIGTERM stops it cleanly.
    Watch {
        /// Daemon configuration (state, listen address, token, workflow files).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// text (default) or json: one JSON object per line, for log shippers.
        #[arg(long, default_value = "text")]
        log_format: String,
    },
    /// Take a parked (or failed) watched file again, by job id or by path.
    Retry {
        what: String,
        #[command(flatten)]
        state: StateArg,
    },
    /// Stop taking new files from a watched folder (files keep arriving; nothing is lost).
    Pause {
        folder: PathBuf,
        #[command(flatten)]
        state: StateArg,
    },
    /// Take files from a paused folder again.
    Resume {
        folder: PathBuf,
        #[command(flatten)]
        state: StateArg,
    },
    /// Cancel a job: a running spool kills its ffmpeg processes and cleans up.
    Cancel {
        job: String,
        #[command(flatten)]
        state: StateArg,
    },
    /// Make a GIF preview with palettegen/paletteuse.
    Gif {
        input: PathBuf,
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 344)]
        width: u32,
        #[arg(long, default_value_t = 10)]
        fps: u32,
        #[arg(long, default_value_t = 3.0)]
        start: f64,
        #[arg(long, default_value_t = 25.0)]
        duration: f64,
    },
    /// Show what `run` would do with INPUT: the hooks' decisions and every ffmpeg argv.
    /// Probes only; encodes nothing and writes no state.
    Plan {
        input: PathBuf,
        #[arg(long, value_name = "FILE")]
        workflow: Option<PathBuf>,
        /// Output root, as for `run` (it appears in the join commands).
        #[arg(long, value_name = "DIR", default_value = "spool-out")]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Whisper subtitles for one file (in-process, CTranslate2): WebVTT on stdout, or --out
    /// FILE.vtt / FILE.srt, or --json with the cues and timings.
    #[cfg(feature = "whisper")]
    Transcribe {
        input: PathBuf,
        /// A CTranslate2 Whisper model directory (default: $SPOOL_WHISPER_MODEL).
        #[arg(long, value_name = "DIR")]
        model: Option<PathBuf>,
        /// ISO 639-1 code; detected on multilingual models when absent.
        #[arg(long)]
        language: Option<String>,
        /// Translate to English (multilingual models).
        #[arg(long)]
        translate: bool,
        #[arg(long, default_value_t = 5)]
        beam_size: usize,
        /// CPU threads (0: CTranslate2 chooses).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// int8, int8_float32, float32 or default.
        #[arg(long, default_value = "int8")]
        compute: String,
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Check workflow files; exit 1 with every error if any is invalid.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Make a 24-second sample clip (lavfi testsrc2 + tones) and run the default workflow on it.
    Demo {
        /// Use this file instead of a generated clip.
        input: Option<PathBuf>,
        #[arg(long, value_name = "DIR", default_value = "spool-demo")]
        out: PathBuf,
        #[command(flatten)]
        state: StateArg,
    },
}

const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_INTERRUPTED: u8 = 130;

fn state_dir(arg: &StateArg) -> PathBuf {
    if let Some(dir) = &arg.state {
        return dir.clone();
    }
    if let Some(dir) = std::env::var_os("SPOOL_STATE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("spool")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("SPOOL_LOG")
        .unwrap_or_else(|_| "spool=info".into());
    let json_logs =
        matches!(&cli.command, Command::Watch { log_format, .. } if log_format == "json");
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if json_logs {
        logs.json()
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        logs.with_ansi(std::io::stderr().is_terminal()).init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("spool: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("spool: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn load_workflow(path: Option<&Path>) -> Result<LoadedWorkflow> {
    Ok(match path {
        Some(p) => workflow::load_file(p)?,
        None => workflow::load_default()?,
    })
}

/// Errors returned from here are usage or configuration errors (exit 2).
async fn dispatch(command: Command) -> Result<u8> {
    match command {
        Command::Run {
            inputs,
            workflow,
            out,
            state,
            json,
            force,
            concurrency,
            trace_commands,
            keep_work,
        } => {
            let wf = load_workflow(workflow.as_deref())?;
            let debug = DebugOpts {
                trace_commands,
                keep_work,
            };
            run(
                &inputs,
                wf,
                &out,
                &state_dir(&state),
                json,
                force,
                concurrency,
                debug,
            )
            .await
        }
        Command::Plan {
            input,
            workflow,
            out,
            json,
        } => {
            let wf = load_workflow(workflow.as_deref())?;
            cli::plan::plan(&input, &wf, &out, json).await
        }
        Command::Watch { config, log_format } => {
            if !["text", "json"].contains(&log_format.as_str()) {
                anyhow::bail!("--log-format is text or json, not {log_format:?}");
            }
            watch(&config).await
        }
        Command::Retry { what, state } => {
            cli::status::retry(&state_dir(&state), &what)?;
            Ok(0)
        }
        Command::Pause { folder, state } => {
            cli::status::pause(&state_dir(&state), &folder, true)?;
            Ok(0)
        }
        Command::Resume { folder, state } => {
            cli::status::pause(&state_dir(&state), &folder, false)?;
            Ok(0)
        }
        Command::Status { job, state, json } => {
            cli::status::status(&state_dir(&state), job.as_deref(), json)?;
            Ok(0)
        }
        Command::Cancel { job, state } => {
            cli::status::cancel(&state_dir(&state), &job)?;
            Ok(0)
        }
        Command::Gif {
            input,
            out,
            width,
            fps,
            start,
            duration,
        } => gif(&input, out, width, fps, start, duration).await,
        #[cfg(feature = "whisper")]
        Command::Transcribe {
            input,
            model,
            language,
            translate,
            beam_size,
            threads,
            compute,
            out,
            json,
        } => {
            let options = spool::speech::Options {
                language,
                translate,
                beam_size,
                compute: cli::transcribe::compute_from(&compute)?,
                threads,
            };
            cli::transcribe::transcribe(cli::transcribe::Args {
                input,
                model,
                options,
                out,
                json,
            })
            .await
        }
        Command::Validate { files } => {
            let mut bad = 0;
            for f in &files {
                match workflow::load_file(f) {
                    Ok(w) => println!(
                        "{}: ok ({} profiles)",
                        f.display(),
                        w.workflow.profiles.len()
                    ),
                    Err(e) => {
                        bad += 1;
                        eprintln!("{e}");
                    }
                }
            }
            Ok(if bad == 0 { 0 } else { EXIT_FAILED })
        }
        Command::Demo { input, out, state } => {
            let input = match input {
                Some(i) => i,
                None => make_demo_clip(&out).await?,
            };
            let wf = workflow::load_default()?;
            run(
                &[input],
                wf,
                &out,
                &state_dir(&state),
                false,
                false,
                None,
                DebugOpts::default(),
            )
            .await
        }
    }
}

/// Hidden options the benchmark uses.
#[derive(Default)]
struct DebugOpts {
    trace_commands: Option<PathBuf>,
    keep_work: bool,
}

#[allow(clippy::too_many_arguments)]
async fn run(
    inputs: &[PathBuf],
    wf: LoadedWorkflow,
    out: &Path,
    state: &Path,
    json: bool,
    force: bool,
    concurrency: Option<usize>,
    debug: DebugOpts,
) -> Result<u8> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let concurrency = concurrency
        .or(wf.workflow.encode.concurrency)
        .unwrap_or(cores)
        .max(1);
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let bars = !json && std::io::stderr().is_terminal();
    let ui = tokio::spawn(cli::ui::render(rx, bars));
    let cfg = EngineConfig {
        state_dir: state.to_path_buf(),
        concurrency,
        trace_commands: debug.trace_commands,
        keep_work: debug.keep_work,
    };
    let engine = Engine::open(cfg, tx, shutdown.clone()).await?;
    let outcomes = engine.run_all(inputs, &Arc::new(wf), out, force).await;
    drop(engine);
    let _ = ui.await;
    if json {
        for o in &outcomes {
            println!("{}", serde_json::to_string(o)?);
        }
    }
    Ok(
        if outcomes
            .iter()
            .all(|o| matches!(o.status, JobStatus::Succeeded | JobStatus::Skipped))
        {
            0
        } else if shutdown.is_cancelled() {
            EXIT_INTERRUPTED
        } else {
            EXIT_FAILED
        },
    )
}

async fn watch(config: &Path) -> Result<u8> {
    let loaded = spool::daemon::config::load(config).map_err(anyhow::Error::msg)?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let cfg = EngineConfig {
        state_dir: loaded.config.state.clone(),
        concurrency: loaded.config.concurrency.unwrap_or(cores).max(1),
        trace_commands: None,
        keep_work: false,
    };
    // The daemon stops admitting on a signal; the engine's own token interrupts jobs only
    // after the grace period.
    let signals = CancellationToken::new();
    spawn_signal_handler_saying(
        signals.clone(),
        "signal received: finishing running jobs within the grace period",
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let engine = Engine::open(cfg, tx, CancellationToken::new()).await?;
    let clock = std::env::var_os("SPOOL_CLOCK_FILE").map(PathBuf::from);
    spool::daemon::run(loaded, engine, signals, clock)
        .await
        .map_err(anyhow::Error::msg)
}

/// Ctrl-C and SIGTERM stop cleanly: ffmpeg groups are killed, jobs stay resumable.
fn spawn_signal_handler(shutdown: CancellationToken) {
    spawn_signal_handler_saying(
        shutdown,
        "stopping: killing running ffmpeg processes; run the same command again to resume",
    );
}

fn spawn_signal_handler_saying(shutdown: CancellationToken, message: &'static str) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cannot listen for SIGTERM: {e}");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::warn!("{message}");
        shutdown.cancel();
    });
}

async fn gif(
    input: &Path,
    out: Option<PathBuf>,
    width: u32,
    fps: u32,
    start: f64,
    duration: f64,
) -> Result<u8> {
    let tools = Tools::locate().await?;
    let media = probe(&tools, input).await?;
    let start = start.min(media.duration * 0.2).max(0.0);
    let length = duration.min(media.duration - start).max(0.1);
    let out = out.unwrap_or_else(|| input.with_extension("gif"));
    let argv = gif_args(
        input,
        start,
        length,
        width.clamp(16, 1920),
        fps.clamp(1, 30),
        &out,
    );
    match run_ffmpeg(&tools, &argv, &CancellationToken::new(), |_| {}).await {
        Ok(_) => {
            println!("{}", out.display());
            Ok(0)
        }
        Err(e) => {
            eprintln!("spool: gif failed: {e}");
            Ok(EXIT_FAILED)
        }
    }
}

async fn make_demo_clip(out: &Path) -> Result<PathBuf> {
    let tools = Tools::locate().await?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let clip = out.join("demo-source.mp4");
    if clip.is_file() {
        return Ok(clip);
    }
    eprintln!("making a 24 s sample clip at {}", clip.display());
    let argv = spool::media::tools::os_args([
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=640x360:r=25:d=24",
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:sample_rate=48000:d=24",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-g",
        "50",
        "-c:a",
        "aac",
        "-shortest",
    ])
    .into_iter()
    .chain([clip.as_os_str().to_owned()])
    .collect::<Vec<_>>();
    run_ffmpeg(&tools, &argv, &CancellationToken::new(), |_| {})
        .await
        .context("making the demo clip")?;
    Ok(clip)
}
