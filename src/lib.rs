//! spool: a durable media workflow engine built on ffmpeg.

pub mod engine;
pub mod media;
pub mod script;
pub mod store;
pub mod workflow;
