//! Everything spool knows about ffmpeg, and nothing about Lua, sled or jobs.

pub mod argv_guard;
pub mod chunk;
pub mod colour;
pub mod command;
pub mod edits;
pub mod hash;
pub mod hls;
pub mod join;
pub mod measure;
pub mod mp4;
pub mod picture;
pub mod probe;
pub mod profiles;
pub mod progress;
pub mod quality;
pub mod ranges;
pub mod run;
pub mod thumbs;
pub mod tools;
pub mod verify;
