//! spool: a durable media workflow engine built on ffmpeg.

pub mod confine;
pub mod daemon;
pub mod engine;
pub mod media;
pub mod paths;
pub mod script;
#[cfg(feature = "whisper")]
pub mod speech;
pub mod store;
pub mod workflow;
