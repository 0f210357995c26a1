//! What hooks return, as Rust types: a reply that does not fit names the hook and field.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::workflow::schema::{Chunking, EncodeSettings};
use crate::workflow::Profile;

/// on_discover's reply: `{ action = "accept" }` or `{ action = "skip", reason = "..." }`; nil accepts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DiscoverReply {
    pub action: DiscoverAction,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub(super) enum DiscoverAction {
    Accept,
    Skip,
}

/// What the plan hook receives and must return: the parts of the workflow it may change.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanDoc {
    pub profiles: Vec<Profile>,
    pub chunking: Chunking,
    pub encode: EncodeSettings,
    #[serde(default)]
    pub streams: crate::workflow::streams::Streams,
}

/// before_task's reply: structured edits, or a whole argv, or nil to keep spool's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TaskReply {
    /// A whole argv (checked): the exception.
    #[serde(default)]
    pub argv: Option<Vec<String>>,
    /// Structured changes spool renders and quotes itself: the rule.
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, crate::media::edits::Scalar>,
    #[serde(default)]
    pub encoder_params: std::collections::BTreeMap<String, crate::media::edits::Scalar>,
    #[serde(default)]
    pub filters: Vec<crate::media::edits::FilterEdit>,
}

/// on_error's reply; nil means spool's own policy (retry up to retries.max_attempts).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorReply {
    pub action: ErrorAction,
    #[serde(default)]
    pub delay_seconds: Option<f64>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorAction {
    Retry,
    Fail,
    Skip,
}

/// A lua step's reply: files it wrote in the work directory to publish, and data for the
/// manifest.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepReply {
    #[serde(default)]
    pub outputs: Vec<StepOutput>,
    #[serde(default)]
    pub data: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepOutput {
    pub path: String,
    #[serde(default = "default_kind")]
    pub kind: String,
}

fn default_kind() -> String {
    "file".into()
}
