//! Kernel confinement of spool's child processes (Linux Landlock): ffmpeg, through the
//! launcher below, and the Lua hook runner, which confines itself with [`restrict_self`].
//! A bottom layer: it knows nothing of ffmpeg options or Lua. spool re-executes itself as a small
//! launcher, `spool __confine --read P… --write W… -- ffmpeg …`, which restricts itself and
//! then execs ffmpeg: the restriction is inherited, so that ffmpeg can read only the job's
//! files (and the system's libraries), write only in the job's directories, open no TCP
//! connection and signal no process outside. Whatever an option, a filter or an encoder
//! parameter names, the kernel refuses the rest. No `unsafe` is needed anywhere.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetError, RulesetStatus, Scope, ABI,
};

/// The argument that starts the launcher.
pub const CONFINE_ARG: &str = "__confine";

/// The newest Landlock ABI spool asks for; older kernels get what they support.
const WANTED: ABI = ABI::V6;

/// What a confined process may touch besides the system's read-only files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Paths {
    pub read: Vec<PathBuf>,
    pub write: Vec<PathBuf>,
}

/// Read-only paths every program needs to start and run: libraries, the loader's cache,
/// fonts, the CPU's description. Nothing here holds a user's data.
const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/bin",
    "/sbin",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/fonts",
    "/etc/localtime",
    "/dev/null",
    "/dev/zero",
    "/dev/urandom",
    "/proc/self",
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/sys/devices/system/cpu",
    "/sys/fs/cgroup",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error("cannot confine: {0}")]
    Ruleset(#[from] RulesetError),
    #[error("the kernel does not enforce Landlock")]
    NotEnforced,
    #[error("usage: {CONFINE_ARG} [--read PATH]… [--write PATH]… -- PROGRAM ARG…")]
    Usage,
    #[error("cannot start {program}: {source}")]
    Exec {
        program: String,
        source: std::io::Error,
    },
}

/// How well a restriction holds on this kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement {
    Full,
    Partial,
}

/// Restricts this process (and every program it then executes) to `paths`. It must be
/// single-threaded: Landlock restricts the calling thread.
pub fn restrict_self(paths: &Paths) -> Result<Enforcement, ConfineError> {
    let system: Vec<&Path> = SYSTEM_READ
        .iter()
        .map(Path::new)
        .filter(|p| p.exists())
        .collect();
    let readable: Vec<&Path> = paths
        .read
        .iter()
        .map(PathBuf::as_path)
        .filter(|p| p.exists())
        .collect();
    let writable: Vec<&Path> = paths
        .write
        .iter()
        .map(PathBuf::as_path)
        .filter(|p| p.exists())
        .collect();
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(WANTED))?
        .handle_access(AccessNet::from_all(WANTED))?
        .scope(Scope::from_all(WANTED))?
        .create()?
        .add_rules(path_beneath_rules(system, AccessFs::from_read(WANTED)))?
        .add_rules(path_beneath_rules(readable, AccessFs::from_read(WANTED)))?
        .add_rules(path_beneath_rules(writable, AccessFs::from_all(WANTED)))?
        .restrict_self()?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok(Enforcement::Full),
        RulesetStatus::PartiallyEnforced => Ok(Enforcement::Partial),
        _ => Err(ConfineError::NotEnforced),
    }
}

/// The launcher's command line for `argv` (program first).
pub fn confined_command_line(launcher: &Path, paths: &Paths, argv: &[OsString]) -> Vec<OsString> {
    let mut line: Vec<OsString> = vec![launcher.as_os_str().to_owned(), CONFINE_ARG.into()];
    for (flag, list) in [("--read", &paths.read), ("--write", &paths.write)] {
        for p in list {
            line.push(flag.into());
            line.push(p.as_os_str().to_owned());
        }
    }
    line.push("--".into());
    line.extend(argv.iter().cloned());
    line
}

/// The launcher itself: `args` are what follows [`CONFINE_ARG`]. With `--probe` it only
/// reports how well Landlock holds here (exit 0: fully, 3: partly, 4: not at all).
/// Otherwise it never returns on success: the program replaces it.
pub fn launch(args: Vec<OsString>) -> u8 {
    if args.first().is_some_and(|a| a == "--probe") {
        return match restrict_self(&Paths::default()) {
            Ok(Enforcement::Full) => 0,
            Ok(Enforcement::Partial) => 3,
            Err(_) => 4,
        };
    }
    let (paths, argv) = match parse(args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("spool {CONFINE_ARG}: {e}");
            return 2;
        }
    };
    if let Err(e) = restrict_self(&paths) {
        eprintln!("spool {CONFINE_ARG}: {e}");
        return 126;
    }
    let error = std::process::Command::new(&argv[0]).args(&argv[1..]).exec();
    eprintln!(
        "spool {CONFINE_ARG}: {}",
        ConfineError::Exec {
            program: argv[0].to_string_lossy().into_owned(),
            source: error,
        }
    );
    127
}

fn parse(args: Vec<OsString>) -> Result<(Paths, Vec<OsString>), ConfineError> {
    let mut paths = Paths::default();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--read") => paths
                .read
                .push(it.next().ok_or(ConfineError::Usage)?.into()),
            Some("--write") => paths
                .write
                .push(it.next().ok_or(ConfineError::Usage)?.into()),
            Some("--") => {
                let argv: Vec<OsString> = it.collect();
                return match argv.is_empty() {
                    true => Err(ConfineError::Usage),
                    false => Ok((paths, argv)),
                };
            }
            _ => return Err(ConfineError::Usage),
        }
    }
    Err(ConfineError::Usage)
}

/// Where the launcher is, and whether confinement holds here: decided once per process
/// by running the launcher's probe. None: ffmpeg runs unconfined (and spool says so).
pub fn detect_launcher() -> Option<(PathBuf, Enforcement)> {
    let launcher = match std::env::var_os("SPOOL_CONFINE") {
        Some(v) if v == "off" => return None,
        Some(v) => PathBuf::from(v),
        None => std::env::current_exe()
            .ok()
            .filter(|e| e.file_stem().is_some_and(|s| s == "spool"))?,
    };
    let probe = std::process::Command::new(&launcher)
        .args([CONFINE_ARG, "--probe"])
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    match probe.status.code() {
        Some(0) => Some((launcher, Enforcement::Full)),
        Some(3) => Some((launcher, Enforcement::Partial)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_launcher_line_round_trips() -> Result<(), ConfineError> {
        let paths = Paths {
            read: vec!["/in/a b.mp4".into()],
            write: vec!["/w".into(), "/o".into()],
        };
        let argv: Vec<OsString> = vec!["/usr/bin/ffmpeg".into(), "-i".into(), "x".into()];
        let line = confined_command_line(Path::new("/spool"), &paths, &argv);
        assert_eq!(line[1], CONFINE_ARG);
        let (back, cmd) = parse(line[2..].to_vec())?;
        assert_eq!(back, paths);
        assert_eq!(cmd, argv);
        assert!(parse(vec!["--read".into()]).is_err());
        assert!(parse(vec!["--".into()]).is_err());
        Ok(())
    }
}
