//! The daemon's own configuration file (`spool watch --config FILE`), and the checks that
//! need every workflow at once: no folder may be claimed twice.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::workflow::{load_file, LoadedWorkflow};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// State directory (sled, work files, cache); relative to the config file.
    pub state: PathBuf,
    /// Where the HTTP API listens; loopback by default.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// When set, every API call needs `Authorization: Bearer <token>`.
    #[serde(default)]
    pub token: Option<String>,
    /// Workflow files, relative to the config file. Each names the folders it watches.
    pub workflows: Vec<PathBuf>,
    /// On SIGTERM, how long running jobs may take to finish before they are interrupted
    /// (they resume at the next start).
    #[serde(default = "default_grace")]
    pub grace_seconds: f64,
    /// Jobs at once (ffmpeg processes are capped separately, one per core).
    #[serde(default = "default_jobs")]
    pub max_jobs: usize,
    /// ffmpeg processes at once; one per core by default.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// What jobs submitted through `POST /v1/jobs` may read and write.
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    /// Encode on `spool worker`s through Redis instead of on this machine.
    #[serde(default)]
    pub queue: Option<QueueConfig>,
}

/// The distributed queue (see `spool worker`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// `redis://HOST:PORT[/DB]`.
    pub redis: String,
    /// Key prefix; one coordinator per prefix.
    #[serde(default)]
    pub prefix: Option<String>,
    /// A worker silent this long loses its task to another worker.
    #[serde(default = "default_lease")]
    pub lease_seconds: f64,
    /// Deliveries of one task (first included) before it fails.
    #[serde(default = "default_deliveries")]
    pub max_deliveries: u32,
    /// An absolute path the workers mount too (NFS or similar): chunks and results move
    /// through it instead of over HTTP (workers pass `--shared`).
    #[serde(default)]
    pub shared: Option<PathBuf>,
    /// ffmpeg processes this coordinator runs itself, beside the workers (0: none).
    #[serde(default)]
    pub encode_here: usize,
}

impl QueueConfig {
    /// The queue's settings; `state` holds the shared root this coordinator's own encodes
    /// use when none is configured.
    pub fn settings(
        &self,
        state: &Path,
    ) -> Result<crate::engine::queue::remote::RedisSettings, String> {
        let mut s = crate::engine::queue::remote::RedisSettings::new(&self.redis)
            .map_err(|e| format!("queue.redis: {e}"))?;
        if !(self.lease_seconds.is_finite() && self.lease_seconds >= 1.0) {
            return Err(format!(
                "queue.lease_seconds: {} (at least 1)",
                self.lease_seconds
            ));
        }
        if self.max_deliveries == 0 {
            return Err("queue.max_deliveries: at least 1".into());
        }
        s.lease = std::time::Duration::from_secs_f64(self.lease_seconds);
        s.max_deliveries = self.max_deliveries;
        if let Some(p) = &self.prefix {
            s.prefix = p.clone();
        }
        s.shared = match &self.shared {
            Some(dir) if !dir.is_absolute() => {
                return Err(format!(
                    "queue.shared: {} is not an absolute path (workers mount it too)",
                    dir.display()
                ))
            }
            Some(dir) => Some(dir.clone()),
            None if self.encode_here > 0 => Some(state.join("shared")),
            None => None,
        };
        s.shared_private = self.shared.is_none();
        Ok(s)
    }
}

fn default_lease() -> f64 {
    30.0
}
fn default_deliveries() -> u32 {
    5
}

/// The encoded-chunk cache.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// E.g. `50GiB`; by default what the cache holds plus half its disk's free space.
    pub max_size: Option<String>,
}

impl CacheConfig {
    pub fn max_bytes(&self) -> Result<Option<u64>, String> {
        self.max_size
            .as_deref()
            .map(crate::engine::artifacts::evict::parse_size)
            .transpose()
            .map_err(|e| format!("cache.max_size: {e}"))
    }
}

/// The API's confinement: inputs only under `input_roots`, outputs only under
/// `output_roots` (symlinks resolved). With no roots, the API submits no jobs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    #[serde(default)]
    pub input_roots: Vec<PathBuf>,
    #[serde(default)]
    pub output_roots: Vec<PathBuf>,
    /// Signs every per-job callback (`X-Spool-Signature: sha256=<HMAC-SHA256 of the body>`).
    #[serde(default)]
    pub callback_secret: Option<String>,
}

fn default_listen() -> String {
    "127.0.0.1:7300".into()
}
fn default_grace() -> f64 {
    30.0
}
fn default_jobs() -> usize {
    2
}

/// A loaded configuration: paths resolved, every workflow valid and watching.
pub struct Loaded {
    pub config: DaemonConfig,
    pub workflows: Vec<(PathBuf, LoadedWorkflow)>,
}

pub fn load(path: &Path) -> Result<Loaded, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut config: DaemonConfig = serde_yaml::from_str(&text).map_err(|e| {
        let at = e
            .location()
            .map_or(String::new(), |l| format!(":{}:{}", l.line(), l.column()));
        format!("{}{at}: {e}", path.display())
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    config.state = base.join(&config.state);
    let mut problems = Vec::new();
    let mut workflows = Vec::new();
    for w in &config.workflows {
        let file = base.join(w);
        match load_file(&file) {
            Ok(wf) if wf.workflow.watch.is_none() => problems.push(format!(
                "{}: has no watch section, so it has no folders to watch",
                file.display()
            )),
            Ok(wf) => workflows.push((file, wf)),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if workflows.is_empty() && problems.is_empty() {
        problems.push(format!("{}: workflows: name at least one", path.display()));
    }
    if !(config.grace_seconds.is_finite() && config.grace_seconds >= 0.0) {
        problems.push(format!("{}: grace_seconds must be ≥ 0", path.display()));
    }
    problems.extend(overlaps(&workflows));
    if let Err(e) = config.cache.max_bytes() {
        problems.push(format!("{}: {e}", path.display()));
    }
    if !config.api.input_roots.is_empty() && config.token.is_none() {
        problems.push(format!(
            "{}: api.input_roots lets callers start jobs: set a token too",
            path.display()
        ));
    }
    for (field, roots) in [
        ("input_roots", &mut config.api.input_roots),
        ("output_roots", &mut config.api.output_roots),
    ] {
        for root in roots.iter_mut() {
            match base.join(&*root).canonicalize() {
                Ok(real) if real.is_dir() => *root = real,
                Ok(real) => problems.push(format!(
                    "{}: api.{field}: {} is not a directory",
                    path.display(),
                    real.display()
                )),
                Err(e) => problems.push(format!(
                    "{}: api.{field}: {}: {e}",
                    path.display(),
                    root.display()
                )),
            }
        }
    }
    if problems.is_empty() {
        Ok(Loaded { config, workflows })
    } else {
        Err(problems.join("\n"))
    }
}

/// Each workflow's folders, absolute (relative ones are against the workflow file).
pub fn folders_of(wf: &LoadedWorkflow) -> Vec<PathBuf> {
    wf.workflow
        .watch
        .iter()
        .flat_map(|w| w.folders.iter().map(|f| absolute(&wf.base_dir.join(f))))
        .collect()
}

fn absolute(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    })
}

/// Two workflows claiming one folder (or one inside the other's recursive folder).
fn overlaps(workflows: &[(PathBuf, LoadedWorkflow)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, (fa, a)) in workflows.iter().enumerate() {
        for (fb, b) in &workflows[i + 1..] {
            let rec = |w: &LoadedWorkflow| w.workflow.watch.as_ref().is_some_and(|w| w.recursive);
            for x in folders_of(a) {
                for y in folders_of(b) {
                    let clash =
                        x == y || (rec(a) && y.starts_with(&x)) || (rec(b) && x.starts_with(&y));
                    if clash {
                        problems.push(format!(
                            "{} and {} both claim {}",
                            fa.display(),
                            fb.display(),
                            if x.starts_with(&y) { &x } else { &y }.display()
                        ));
                    }
                }
            }
        }
    }
    problems
}
