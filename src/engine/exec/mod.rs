//! Where every ffmpeg a job starts runs: one [`Runner`] owning the slots (and their
//! per-workflow gates), the command trace, cancellation and the process-group registry.

pub mod disk;
mod runner;
mod slots;

pub use runner::{Command, Phase, Placement, Runner};
pub use slots::{Priority, SlotGuard, Slots};
