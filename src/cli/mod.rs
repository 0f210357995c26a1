pub mod client;
pub mod plan;
pub mod status;
#[cfg(feature = "whisper")]
pub mod transcribe;
pub mod ui;
