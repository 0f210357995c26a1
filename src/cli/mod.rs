pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_INTERRUPTED: u8 = 130;

pub mod cache;
pub mod client;
pub mod plan;
pub mod run;
pub mod samples;
pub mod status;
#[cfg(feature = "whisper")]
pub mod transcribe;
pub mod ui;
pub mod version;
pub mod worker;
