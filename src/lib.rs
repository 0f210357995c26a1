//! spool: a durable media workflow engine built on ffmpeg.

pub mod media;
pub mod workflow;
