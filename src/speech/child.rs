//! Whisper in a child process: `spool __whisper --model DIR --pcm FILE --out FILE --options
//! JSON`. The engine runs transcriptions this way so that a cancel kills the decoding at once
//! (CTranslate2 cannot be interrupted inside a window, which takes seconds), a schedule's
//! SIGSTOP pauses it like an ffmpeg, and a crash inside the C++ library ends the child, not
//! the daemon. The child confines itself to the model, the audio and its output (Landlock,
//! where the kernel has it), prints `done SAMPLES` lines as it goes, writes the transcript
//! as JSON, and dies with the engine (parent-death signal).

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::{Control, Options, SpeechError, Transcriber, Transcript};
use crate::confine::{restrict_self, Paths};

/// The argument that starts the child.
pub const WHISPER_ARG: &str = "__whisper";

/// How often the child reports how far it got.
const REPORT_EVERY: Duration = Duration::from_millis(250);

/// The program to start Whisper children with: `SPOOL_WHISPER_RUNNER` (`inprocess`, or a
/// path) if set; otherwise the running program if it is spool; otherwise None (in-process:
/// library tests and embedders).
pub fn detect_program() -> Option<PathBuf> {
    if let Some(v) = std::env::var_os("SPOOL_WHISPER_RUNNER") {
        return match v.to_str() {
            Some("inprocess") => None,
            _ => Some(PathBuf::from(v)),
        };
    }
    std::env::current_exe()
        .ok()
        .filter(|exe| exe.file_stem().is_some_and(|s| s == "spool"))
}

/// The child's command line, program first.
pub fn command_line(
    program: &Path,
    model: &Path,
    pcm: &Path,
    out: &Path,
    options: &Options,
) -> Result<Vec<OsString>, SpeechError> {
    let options =
        serde_json::to_string(options).map_err(|e| SpeechError::Options(e.to_string()))?;
    let mut argv: Vec<OsString> = vec![program.into(), WHISPER_ARG.into()];
    for (flag, value) in [
        ("--model", model.as_os_str()),
        ("--pcm", pcm.as_os_str()),
        ("--out", out.as_os_str()),
    ] {
        argv.push(flag.into());
        argv.push(value.into());
    }
    argv.push("--options".into());
    argv.push(options.into());
    Ok(argv)
}

/// Samples done, from one of the child's progress lines.
pub fn parse_progress(line: &str) -> Option<usize> {
    line.strip_prefix("done ")?.trim().parse().ok()
}

struct Args {
    model: PathBuf,
    pcm: PathBuf,
    out: PathBuf,
    options: Options,
}

fn parse(args: Vec<OsString>) -> Result<Args, String> {
    let mut it = args.into_iter();
    let (mut model, mut pcm, mut out, mut options) = (None, None, None, None);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag:?} needs a value"))?;
        match flag.to_str() {
            Some("--model") => model = Some(PathBuf::from(value)),
            Some("--pcm") => pcm = Some(PathBuf::from(value)),
            Some("--out") => out = Some(PathBuf::from(value)),
            Some("--options") => {
                let text = value.to_str().ok_or("--options is not UTF-8")?;
                options = Some(serde_json::from_str(text).map_err(|e| format!("--options: {e}"))?);
            }
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    match (model, pcm, out, options) {
        (Some(model), Some(pcm), Some(out), Some(options)) => Ok(Args {
            model,
            pcm,
            out,
            options,
        }),
        _ => Err(format!(
            "usage: {WHISPER_ARG} --model DIR --pcm FILE --out FILE --options JSON"
        )),
    }
}

/// Runs the child; returns its exit code.
pub fn run(args: Vec<OsString>) -> u8 {
    // The child dies with the engine that started it: a daemon killed mid-transcription leaves
    // no Whisper decoding for no one. (Started through `nice`, which execs: the parent is
    // the engine.) Already orphaned: nothing to do.
    let orphaned = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).is_err()
        || nix::unistd::getppid() == nix::unistd::Pid::from_raw(1);
    if orphaned {
        eprintln!("spool {WHISPER_ARG}: the engine that started it is gone");
        return 1;
    }
    match parse(args).and_then(|a| transcribe(&a)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("spool {WHISPER_ARG}: {e}");
            1
        }
    }
}

fn transcribe(args: &Args) -> Result<(), String> {
    // Before any thread starts (Landlock restricts the calling thread and what it starts).
    let out_dir = args.out.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut read = vec![args.model.clone(), args.pcm.clone()];
    read.extend(linked_files(&args.model));
    let paths = Paths {
        read,
        write: vec![out_dir],
    };
    if let Err(e) = restrict_self(&paths) {
        eprintln!("spool {WHISPER_ARG}: runs unconfined: {e}");
    }
    let bytes = std::fs::read(&args.pcm).map_err(|e| format!("{}: {e}", args.pcm.display()))?;
    let samples: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let control = Control::default();
    let done = Arc::clone(&control.done);
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = Arc::clone(&finished);
    let reporter = std::thread::spawn(move || {
        let mut stdout = std::io::stdout();
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(REPORT_EVERY);
            let line = format!("done {}\n", done.load(Ordering::Relaxed));
            if stdout
                .write_all(line.as_bytes())
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return;
            }
        }
    });
    let result = Transcriber::open(&args.model, args.options.clone())
        .and_then(|t| t.transcribe(&samples, &control));
    finished.store(true, Ordering::Relaxed);
    let _ = reporter.join();
    let transcript: Transcript = result.map_err(|e| e.to_string())?;
    let json = serde_json::to_vec(&transcript).map_err(|e| e.to_string())?;
    std::fs::write(&args.out, json).map_err(|e| format!("{}: {e}", args.out.display()))
}

/// Where the model directory's symbolic links lead (a model assembled from a package's
/// files links to them): the confinement allows what the links name, not only the links.
fn linked_files(model: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(model) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
        .filter_map(|e| std::fs::canonicalize(e.path()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_reads_back_as_it_was_written() {
        let options = Options {
            language: Some("de".into()),
            translate: true,
            beam_size: 5,
            compute: super::super::Compute::Int8,
            threads: 2,
            word_timestamps: false,
        };
        let argv = command_line(
            Path::new("/bin/spool"),
            Path::new("/m"),
            Path::new("/w/a b.f32"),
            Path::new("/w/t.json"),
            &options,
        )
        .unwrap_or_default();
        assert_eq!(argv[1], WHISPER_ARG);
        let args = parse(argv[2..].to_vec()).map_err(|e| e.to_string());
        let args = args.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(args.pcm, Path::new("/w/a b.f32"));
        assert_eq!(args.options.language.as_deref(), Some("de"));
        assert!(args.options.translate);
        assert!(parse(vec!["--model".into()]).is_err());
        assert_eq!(parse_progress("done 16000"), Some(16000));
        assert_eq!(parse_progress("noise"), None);
    }
}
