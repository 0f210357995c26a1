//! The workflow file's shape. Every struct refuses unknown fields.

use serde::{Deserialize, Serialize};

pub use super::steps::{ComputeType, ThumbnailsStep, TranscribeStep};
use crate::media::colour::{BitDepth, HdrPolicy};
use crate::media::profiles::{AudioChannels, Codec, Container, RateControl};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    pub version: u32,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub chunking: Chunking,
    #[serde(default)]
    pub encode: EncodeSettings,
    #[serde(default)]
    pub retries: Retries,
    #[serde(default)]
    pub output: Output,
    #[serde(default)]
    pub gif: Gif,
    pub profiles: Vec<Profile>,
    /// Extra steps, run in order once the ladder is verified and published.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// What happens to the input file after a verified, durable success.
    #[serde(default)]
    pub original: Original,
    /// URLs that get job events as JSON (the seed's encoding_url), without blocking the job.
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
    /// Folders `spool watch` takes files from for this workflow.
    pub watch: Option<Watch>,
    /// When this workflow may encode (for `spool watch`); always when absent.
    pub schedule: Option<Schedule>,
    /// Lua hooks that customise this workflow.
    pub script: Option<Script>,
    /// Which audio tracks, subtitles, chapters and tags the outputs keep (all, by default).
    #[serde(default)]
    pub streams: super::streams::Streams,
    /// Deinterlacing, rotation and cropping before the ladder.
    #[serde(default)]
    pub picture: super::picture::PictureSettings,
    /// EBU R128 loudness normalisation of every kept audio track; off when absent.
    pub loudness: Option<super::picture::LoudnessSettings>,
    /// No published rung bigger than this fraction of the source (each profile may override).
    pub size_guard: Option<SizeGuard>,
    /// `fixed` (the profiles as written) or `per_title` (chosen from sample encodes).
    #[serde(default)]
    pub ladder: Ladder,
    /// `ladder: per_title`'s settings.
    pub per_title: Option<crate::media::quality::hull::PerTitle>,
}

/// How the rungs are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ladder {
    /// Every profile that fits the source, at its own settings.
    #[default]
    Fixed,
    /// The profiles are candidates: sample encodes at each height × CRF, and the rungs are
    /// taken from the bitrate-quality hull (Netflix's per-title encoding).
    PerTitle,
}

/// One step after the ladder. Each is a one-key map, e.g. `- lua: { function: sidecar }`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Calls a function of the workflow's script with the job's context.
    Lua(LuaStep),
    /// Packages the published ladder as HLS (no re-encode) into `<out>/hls/`.
    Hls(HlsStep),
    /// A poster frame, sprite sheets and the sprites.vtt scrubbing track.
    Thumbnails(ThumbnailsStep),
    /// Whisper subtitles (<stem>.<lang>.vtt and .srt) and the transcript in the manifest.
    Transcribe(TranscribeStep),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HlsStep {
    /// Target segment length; a multiple of encode.keyframe_interval_seconds, so every
    /// segment starts on a keyframe.
    #[serde(default = "default_hls_seconds")]
    pub segment_seconds: f64,
    /// fmp4 (default) or mpegts.
    #[serde(default)]
    pub segment_type: crate::media::hls::SegmentType,
}

fn default_hls_seconds() -> f64 {
    6.0
}

impl Step {
    /// The step's name in the manifest.
    pub fn label(&self) -> &str {
        match self {
            Step::Lua(l) => l.label(),
            Step::Hls(_) => "hls",
            Step::Thumbnails(_) => "thumbnails",
            Step::Transcribe(_) => "transcribe",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LuaStep {
    /// The function in the script's returned table.
    pub function: String,
    /// The step's name in the manifest; the function's name by default.
    pub name: Option<String>,
}

impl LuaStep {
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.function)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    /// Which events to send; all of them by default.
    #[serde(default = "all_events")]
    pub events: Vec<WebhookEvent>,
    /// Extra request headers, e.g. Authorization.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// When set, every delivery carries `X-Spool-Signature: sha256=<hex>`, the HMAC-SHA256
    /// of the body under this secret.
    #[serde(default)]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookEvent {
    Started,
    /// At 25, 50 and 75 % of the encode.
    Progress,
    Succeeded,
    /// Failed, cancelled or interrupted.
    Failed,
    /// Skipped by a hook.
    Skipped,
}

fn all_events() -> Vec<WebhookEvent> {
    vec![
        WebhookEvent::Started,
        WebhookEvent::Progress,
        WebhookEvent::Succeeded,
        WebhookEvent::Failed,
        WebhookEvent::Skipped,
    ]
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    /// Folders to take files from, relative to the workflow file.
    pub folders: Vec<std::path::PathBuf>,
    /// Where outputs go: `<output>/<stem>/`, relative to the workflow file.
    pub output: std::path::PathBuf,
    #[serde(default = "yes")]
    pub recursive: bool,
    /// Glob patterns a file name must match (all files when empty).
    #[serde(default)]
    pub include: Vec<String>,
    /// Glob patterns that exclude a file. Hidden, partial-upload and spool's temp files are
    /// always excluded.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// How long size, mtime and inode must stay unchanged before a file is taken.
    #[serde(default = "default_settle")]
    pub settle_seconds: f64,
    /// When set (e.g. `.done`), a file is taken only once `<name><marker>` exists.
    pub marker: Option<String>,
    /// Poll instead of using events (network file systems deliver none).
    #[serde(default)]
    pub poll: bool,
    /// A full rescan catches what events missed.
    #[serde(default = "default_rescan")]
    pub rescan_seconds: f64,
    /// Failed attempts before a file is parked until `spool retry`.
    #[serde(default = "default_file_attempts")]
    pub max_attempts: u32,
    /// -100 (last) to 100 (first): this folder's jobs against other jobs (API, folders).
    #[serde(default)]
    pub priority: i32,
}

fn yes() -> bool {
    true
}
fn default_settle() -> f64 {
    30.0
}
fn default_rescan() -> f64 {
    300.0
}
fn default_file_attempts() -> u32 {
    3
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Local-time windows in which encoding may run.
    pub windows: Vec<Window>,
    /// Outside the windows no new task starts; running ffmpeg processes are paused
    /// (SIGSTOP, SIGCONT when a window opens) or left to finish.
    #[serde(default)]
    pub outside: Outside,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// mon … sun; every day when absent.
    #[serde(default)]
    pub days: Vec<Day>,
    /// "HH:MM", local time. A window may cross midnight (22:00 → 07:00); it then
    /// belongs to the day it starts on.
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outside {
    #[default]
    Pause,
    Finish,
}

/// The input after success. Nothing happens to it before the outputs and the manifest
/// are verified and durable; on failure it is never touched.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Original {
    #[default]
    Keep,
    /// Moved into this directory (relative to the workflow file), keeping its name.
    MoveTo(std::path::PathBuf),
    Delete,
}

/// Hooks spool calls, at fixed points, with typed tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    /// on_discover(file) → accept, or skip with a reason.
    OnDiscover,
    /// plan(media, plan) → the plan to run.
    Plan,
    /// before_task(task, argv) → the argv to run (checked: job files only).
    BeforeTask,
    /// on_error(job, error) → retry, fail or skip, with an optional delay.
    OnError,
    /// on_complete(job, manifest) → side effects: sidecars, webhooks.
    OnComplete,
}

impl Hook {
    pub fn name(self) -> &'static str {
        match self {
            Hook::OnDiscover => "on_discover",
            Hook::Plan => "plan",
            Hook::BeforeTask => "before_task",
            Hook::OnError => "on_error",
            Hook::OnComplete => "on_complete",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// The Lua file, relative to the workflow file. It returns a table of hook functions.
    pub path: std::path::PathBuf,
    /// The hooks it defines; each must be a function in the returned table.
    pub hooks: Vec<Hook>,
    /// Settings for the script (URLs, thresholds), read in Lua as `spool.params`,
    /// so a team changes them here rather than in code.
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

pub use super::chunking::Chunking;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncodeMode {
    /// One ffmpeg per chunk decodes it once and encodes every rung through `split`.
    Ladder,
    /// One ffmpeg per chunk × rung (the MediaCMS way).
    PerRung,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncodeSettings {
    pub mode: EncodeMode,
    pub keyframe_interval_seconds: f64,
    /// ffmpeg processes at once; by default one per core.
    pub concurrency: Option<usize>,
}

impl Default for EncodeSettings {
    fn default() -> Self {
        EncodeSettings {
            mode: EncodeMode::Ladder,
            keyframe_interval_seconds: 2.0,
            concurrency: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retries {
    pub max_attempts: u32,
    pub backoff_seconds: f64,
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            max_attempts: 3,
            backoff_seconds: 2.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Output {
    /// Placeholders: {stem} {profile} {codec} {height} {ext}.
    pub naming: String,
}

impl Default for Output {
    fn default() -> Self {
        Output {
            naming: "{stem}.{profile}.{ext}".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gif {
    pub enabled: bool,
    pub width: u32,
    pub fps: u32,
    pub start_seconds: f64,
    pub duration_seconds: f64,
}

impl Default for Gif {
    fn default() -> Self {
        Gif {
            enabled: false,
            width: 344,
            fps: 10,
            start_seconds: 3.0,
            duration_seconds: 25.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub codec: Codec,
    pub height: u32,
    /// Encode even when the source is smaller (the seed's MINIMUM_RESOLUTIONS_TO_ENCODE).
    #[serde(default)]
    pub always_encode: bool,
    #[serde(default = "default_rate_control")]
    pub rate_control: RateControl,
    pub crf: Option<u32>,
    pub preset: Option<String>,
    /// Overrides the bitrate table (2-pass target, and the cap for CRF).
    pub bitrate_kbps: Option<u32>,
    pub audio_kbps: Option<u32>,
    /// mp4, webm or mkv; by default mp4 (webm for vp9).
    pub container: Option<Container>,
    /// stereo (default: at most two channels), mono, or keep (5.1 stays 5.1).
    #[serde(default)]
    pub audio_channels: AudioChannels,
    /// keep, tonemap or refuse an HDR source; tonemap for h264, keep for the others.
    pub hdr: Option<HdrPolicy>,
    /// 8, 10 or source; 8 for h264 (10 when it keeps HDR), the source's for the others.
    pub bit_depth: Option<BitDepth>,
    /// Instead of `crf`: the CRF is searched so the encode scores at least the target.
    pub quality: Option<crate::media::quality::QualityTarget>,
    /// Overrides the workflow's `size_guard` for this rung.
    pub size_guard: Option<SizeGuard>,
}

/// An output never bigger than `max_ratio` × the source: a rung over it is not published,
/// with the reason in the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizeGuard {
    pub max_ratio: f64,
}

fn default_rate_control() -> RateControl {
    RateControl::Crf
}
