//! Where every ffmpeg a job starts runs: one [`Runner`] owning the slots (and their
//! per-workflow gates), the command trace, cancellation and the process-group registry.

pub mod disk;
mod helper;
mod runner;
mod slots;

pub use helper::HelperError;
pub use runner::{Command, Phase, Placement, Runner};
pub use slots::{Priority, SlotGuard, Slots};

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
