//! The spool command line: parses arguments, calls the library, maps results to exit codes.

mod cli;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use cli::run::{run, watch, DebugOpts, RunOpts};
use cli::samples::{gif, make_demo_clip};
use spool::workflow::{self, LoadedWorkflow};

/// spool: turns video files into a verified ladder of encodes, durably.
#[derive(Parser)]
#[command(about, disable_version_flag = true, arg_required_else_help = true)]
struct Cli {
    /// Print spool's version, the ffmpeg it finds, and which optional features it has.
    #[arg(short = 'V', long)]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
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
        /// How progress shows on stderr: auto (bars on a terminal, log lines elsewhere), bar,
        /// plain or none. A summary line per job is printed at the end (unless --json).
        #[arg(long, value_enum, default_value = "auto")]
        progress: cli::run::Progress,
        /// Limit of the encoded-chunk cache (e.g. 50GiB); least recently used entries go
        /// first. Default: what it holds plus half its disk's free space.
        #[arg(long, value_name = "SIZE", value_parser = spool::engine::artifacts::evict::parse_size)]
        cache_max_size: Option<u64>,
        /// -100 (last) to 100 (first) against other jobs sharing the scheduler.
        #[arg(long, default_value_t = 0, allow_hyphen_values = true,
              value_parser = clap::value_parser!(i32).range(-100..=100))]
        priority: i32,
        /// Append each ffmpeg argv as a JSON line to FILE (the benchmark replays it).
        #[arg(long, value_name = "FILE", hide = true)]
        trace_commands: Option<PathBuf>,
        /// Keep each job's work directory (for the benchmark's replay).
        #[arg(long, hide = true)]
        keep_work: bool,
        #[command(flatten)]
        queue: cli::run::QueueArgs,
    },
    /// List jobs (newest first) and their tasks from the state store.
    Status {
        /// Show one job with every task.
        job: Option<String>,
        #[command(flatten)]
        state: StateArg,
        #[arg(long)]
        json: bool,
        /// How many of the newest jobs to list.
        #[arg(long, default_value_t = 50)]
        limit: usize,
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
    /// Encode a coordinator's tasks on this machine: claim them from Redis, fetch each chunk
    /// from the coordinator's API, upload the verified results.
    Worker(cli::worker::WorkerArgs),
    /// The encoded-chunk cache: `stats`, `gc --max-size SIZE` (least recently used first),
    /// `verify` (every entry's size and SHA-256; bad ones dropped; exit 1 if any).
    Cache {
        #[command(subcommand)]
        action: cli::cache::CacheCommand,
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
        /// Each word's time too (in --json, and as karaoke timestamps in WebVTT).
        #[arg(long)]
        word_timestamps: bool,
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

use cli::{EXIT_FAILED, EXIT_USAGE};

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
    let first = std::env::args_os().nth(1);
    // A job's hooks run in a child started as `spool __hook-runner` (see script::isolate).
    if first
        .as_ref()
        .is_some_and(|a| a == spool::script::RUNNER_ARG)
    {
        return ExitCode::from(spool::script::isolate::child::run());
    }
    // Transcriptions run as `spool __whisper …` (see speech::child).
    #[cfg(feature = "whisper")]
    if first
        .as_ref()
        .is_some_and(|a| a == spool::speech::child::WHISPER_ARG)
    {
        return ExitCode::from(spool::speech::child::run(
            std::env::args_os().skip(2).collect(),
        ));
    }
    // Every ffmpeg of a job starts as `spool __confine …` (see media::confine).
    if first
        .as_ref()
        .is_some_and(|a| a == spool::confine::CONFINE_ARG)
    {
        return ExitCode::from(spool::confine::launch(
            std::env::args_os().skip(2).collect(),
        ));
    }
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("SPOOL_LOG")
        .unwrap_or_else(|_| "spool=info".into());
    let json_logs =
        matches!(&cli.command, Some(Command::Watch { log_format, .. }) if log_format == "json");
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
    let Some(command) = cli.command else {
        return ExitCode::from(runtime.block_on(cli::version::print()));
    };
    match runtime.block_on(dispatch(command)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("spool: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// An operation that could not be done (nothing matched, no daemon, a refused call) exits
/// 1; exit 2 is for a wrong command line or configuration.
fn done(result: Result<()>) -> u8 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("spool: {e:#}");
            EXIT_FAILED
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
            progress,
            cache_max_size,
            priority,
            trace_commands,
            keep_work,
            queue,
        } => {
            let wf = load_workflow(workflow.as_deref())?;
            let debug = DebugOpts {
                trace_commands,
                keep_work,
            };
            let options = spool::engine::JobOptions {
                force,
                priority,
                ..Default::default()
            };
            run(
                &inputs,
                wf,
                &out,
                &state_dir(&state),
                RunOpts {
                    json,
                    progress,
                    concurrency,
                    cache_max_bytes: cache_max_size,
                    queue,
                },
                options,
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
        Command::Worker(args) => cli::worker::run(args).await,
        Command::Retry { what, state } => Ok(done(cli::status::retry(&state_dir(&state), &what))),
        Command::Pause { folder, state } => {
            Ok(done(cli::status::pause(&state_dir(&state), &folder, true)))
        }
        Command::Resume { folder, state } => {
            Ok(done(cli::status::pause(&state_dir(&state), &folder, false)))
        }
        Command::Status {
            job,
            state,
            json,
            limit,
        } => {
            if job
                .as_deref()
                .is_some_and(|j| !spool::store::JobId::looks_valid(j))
            {
                anyhow::bail!("{job:?} is not a job id (see `spool status`)");
            }
            Ok(done(cli::status::status(
                &state_dir(&state),
                job.as_deref(),
                json,
                limit.max(1),
            )))
        }
        Command::Cancel { job, state } => {
            if !spool::store::JobId::looks_valid(&job) {
                anyhow::bail!("{job:?} is not a job id (see `spool status`)");
            }
            Ok(done(cli::status::cancel(&state_dir(&state), &job)))
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
            word_timestamps,
            out,
            json,
        } => {
            let options = spool::speech::Options {
                language,
                translate,
                beam_size,
                compute: cli::transcribe::compute_from(&compute)?,
                threads,
                word_timestamps,
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
        Command::Cache { action } => {
            let (action, args) = action.split();
            let state = state_dir(&StateArg { state: args.state });
            cli::cache::cache(&state, action, args.json).await
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
                RunOpts {
                    json: false,
                    progress: cli::run::Progress::Auto,
                    concurrency: None,
                    cache_max_bytes: None,
                    queue: Default::default(),
                },
                spool::engine::JobOptions::default(),
                DebugOpts::default(),
            )
            .await
        }
    }
}
