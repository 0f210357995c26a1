//! What the engine and a hook runner say to each other: one JSON object per line.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::script::ScriptError;

/// The job a runner's script works for (see [`crate::script::JobScope`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scope {
    pub job: String,
    pub params: Value,
    pub input: PathBuf,
    pub work_dir: PathBuf,
    pub out_dir: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToRunner {
    /// Load the script; with a scope, the whole `spool` API is there (its work done by the
    /// engine through host calls).
    Load {
        script: PathBuf,
        source: String,
        scripts_dir: PathBuf,
        memory_bytes: usize,
        time_per_call_ms: u64,
        required_hooks: Vec<String>,
        scope: Option<Scope>,
    },
    Call {
        hook: String,
        args: Vec<Value>,
    },
    /// The answer to a host call.
    HostReply {
        result: Result<Value, String>,
    },
    /// An ffmpeg progress report for the script's on_progress callback.
    Progress {
        value: Value,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FromRunner {
    /// The end of a load (Ok(None)) or of a call (the hook's reply; None: no such hook).
    Done {
        result: Result<Option<Value>, ScriptError>,
    },
    /// The script asks the engine to do something.
    Host { call: HostCall },
    /// The on_progress callback returned.
    ProgressDone,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostCall {
    Probe {
        path: PathBuf,
    },
    Md5 {
        path: PathBuf,
    },
    Ffmpeg {
        argv: Vec<String>,
    },
    HttpPost {
        url: String,
        body: Vec<u8>,
        content_type: String,
        headers: Vec<(String, String)>,
        timeout_ms: u64,
    },
}
