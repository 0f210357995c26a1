//! Where every ffmpeg a job starts runs: one [`Runner`] owning the slots (and their
//! per-workflow gates), the command trace, cancellation and the process-group registry.

pub mod disk;
mod helper;
mod runner;
mod slots;

pub use helper::HelperError;
pub use runner::{Command, Phase, Placement, Runner};
pub use slots::{Priority, SlotGuard, Slots};

/// How spool's children start: confined (see [`confining_launcher`]) and at a lower CPU
/// priority (`nice`, 10 by default; `SPOOL_NICE=0` runs them at spool's own): the encodes
/// take what CPU is free, and spool's own threads (the API, leases, the queue) answer
/// promptly beside them.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    pub confine: Option<std::path::PathBuf>,
    /// The `nice` program and the niceness.
    pub nice: Option<(std::path::PathBuf, i32)>,
}

/// Niceness of ffmpeg and Whisper unless `SPOOL_NICE` says otherwise.
const DEFAULT_NICE: i32 = 10;

pub fn launch() -> Launch {
    let level = match std::env::var("SPOOL_NICE") {
        Ok(v) => match v.trim().parse::<i32>() {
            Ok(n) => n.clamp(0, 19),
            Err(_) => {
                tracing::warn!(value = %v, "SPOOL_NICE is not a number from 0 to 19: using {DEFAULT_NICE}");
                DEFAULT_NICE
            }
        },
        Err(_) => DEFAULT_NICE,
    };
    let nice = match level {
        0 => None,
        n => find_nice().map(|p| (p, n)),
    };
    Launch {
        confine: confining_launcher(),
        nice,
    }
}

/// coreutils' `nice`, where the system has it.
fn find_nice() -> Option<std::path::PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join("nice"))
        .find(|p| p.is_file())
}

/// The confining launcher every ffmpeg starts through (Landlock), or None where this kernel
/// has none or `SPOOL_CONFINE=off`; said once, at start.
pub fn confining_launcher() -> Option<std::path::PathBuf> {
    match crate::confine::detect_launcher() {
        Some((launcher, crate::confine::Enforcement::Full)) => Some(launcher),
        Some((launcher, crate::confine::Enforcement::Partial)) => {
            tracing::warn!("this kernel enforces Landlock only in part: ffmpeg is confined as far as it allows");
            Some(launcher)
        }
        None => {
            tracing::warn!("ffmpeg runs unconfined (no Landlock here, or SPOOL_CONFINE=off): scripts' argv are checked by the parser alone");
            None
        }
    }
}
