//! A real cluster on this machine: `redis-server` on a free loopback port with an empty
//! temp dir and no persistence (Debian's default), a `spool watch` coordinator whose config
//! names it as its queue, and `spool worker` processes, each with its own scratch directory
//! and no storage shared with the coordinator.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::api::{Daemon, TOKEN};
use super::{spool_path, wait_until};

pub struct Redis {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Redis {
    pub fn start(dir: &Path) -> Result<Redis, Box<dyn std::error::Error>> {
        let port = free_port()?;
        let child = Redis::spawn(dir, port)?;
        Ok(Redis {
            child,
            port,
            dir: dir.to_path_buf(),
        })
    }

    fn spawn(dir: &Path, port: u16) -> Result<Child, Box<dyn std::error::Error>> {
        std::fs::create_dir_all(dir)?;
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server (apt-get install redis-server): {e}"))?;
        wait_until("redis-server to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })?;
        Ok(child)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: whatever Redis held is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A new, empty Redis on the same port.
    pub fn restart_empty(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        self.kill();
        self.child = Redis::spawn(&self.dir, self.port)?;
        Ok(())
    }

    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes the coordinator's workflow and config (the API may read `dir/media`, write
/// `dir/published`; its queue is `redis`) and starts it.
pub fn coordinator(
    dir: &Path,
    redis: &Redis,
    workflow_extra: &str,
) -> Result<Daemon, Box<dyn std::error::Error>> {
    coordinator_with(dir, redis, workflow_extra, &[])
}

/// [`coordinator`] with extra environment (a test clock, for schedules).
pub fn coordinator_with(
    dir: &Path,
    redis: &Redis,
    workflow_extra: &str,
    env: &[(&str, String)],
) -> Result<Daemon, Box<dyn std::error::Error>> {
    coordinator_queue(dir, redis, workflow_extra, "", env)
}

/// [`coordinator_with`] with more of the queue's settings (`shared: …, encode_here: …`).
pub fn coordinator_queue(
    dir: &Path,
    redis: &Redis,
    workflow_extra: &str,
    queue_extra: &str,
    env: &[(&str, String)],
) -> Result<Daemon, Box<dyn std::error::Error>> {
    for d in ["in", "out", "media", "published"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    std::fs::write(
        dir.join("wf.yaml"),
        format!(
            "version: 1\nname: web\n\
             chunking: {{segment_seconds: 1, min_duration_seconds: 0}}\n\
             encode: {{mode: ladder, keyframe_interval_seconds: 1}}\n\
             watch: {{folders: [in], output: out, settle_seconds: 1}}\n{workflow_extra}"
        ),
    )?;
    std::fs::write(
        dir.join("spool.yaml"),
        format!(
            "state: state\nlisten: 127.0.0.1:{}\ntoken: {TOKEN}\nworkflows: [wf.yaml]\nmax_jobs: 2\n\
             api: {{input_roots: [media], output_roots: [published]}}\n\
             queue: {{redis: \"{}\", lease_seconds: 3, max_deliveries: 4{queue_extra}}}\n",
            free_port()?,
            redis.url()
        ),
    )?;
    Daemon::spawn_with(dir, env)
}

pub struct Worker {
    pub child: Child,
    pub name: String,
    pub work: PathBuf,
}

impl Worker {
    /// `spool worker` with one slot and its own scratch directory under `dir`.
    pub fn start(
        dir: &Path,
        name: &str,
        redis: &Redis,
        coordinator: &str,
    ) -> Result<Worker, Box<dyn std::error::Error>> {
        Worker::start_with(dir, name, redis, coordinator, &[])
    }

    /// [`Worker::start`] with more arguments (`--shared DIR`).
    pub fn start_with(
        dir: &Path,
        name: &str,
        redis: &Redis,
        coordinator: &str,
        extra: &[&str],
    ) -> Result<Worker, Box<dyn std::error::Error>> {
        Worker::start_at(dir, name, &redis.url(), coordinator, extra)
    }

    /// [`Worker::start_with`] reaching Redis at `queue` (through a proxy, say).
    pub fn start_at(
        dir: &Path,
        name: &str,
        queue: &str,
        coordinator: &str,
        extra: &[&str],
    ) -> Result<Worker, Box<dyn std::error::Error>> {
        let work = dir.join(format!("worker-{name}"));
        std::fs::create_dir_all(&work)?;
        let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
        let child = Command::new(spool_path())
            .args(["worker", "--queue", queue, "--coordinator", coordinator])
            .args(["--token", TOKEN, "--concurrency", "1", "--name", name])
            .arg("--work")
            .arg(&work)
            .args(extra)
            .env("SPOOL_LOG", "spool=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        Ok(Worker {
            child,
            name: name.to_string(),
            work,
        })
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The ffmpeg processes whose argv mentions `needle`: (pid, state letter, CPU ticks).
pub fn ffmpeg_states(needle: &str) -> Vec<(u32, char, u64)> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let argv = std::fs::read(e.path().join("cmdline")).ok()?;
            let first = argv.split(|b| *b == 0).next()?;
            if !first.ends_with(b"ffmpeg") || !String::from_utf8_lossy(&argv).contains(needle) {
                return None;
            }
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let state = fields.first()?.chars().next()?;
            let ticks =
                fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            Some((pid, state, ticks))
        })
        .collect()
}

/// Files a coordinator must not keep after a job: partial uploads and intakes.
pub fn leftovers(state: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(state.join("blobs"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect()
}

/// The job's tasks as the API shows them.
pub fn tasks(d: &Daemon, id: &str) -> Vec<serde_json::Value> {
    let (_, text) = d.call("GET", &format!("/v1/jobs/{id}"), None);
    serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default()["tasks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// One counter from `/metrics`.
pub fn metric(d: &Daemon, name: &str) -> f64 {
    let (_, text) = d.call("GET", "/metrics", None);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} "))?.trim().parse().ok())
        .unwrap_or(-1.0)
}

/// Every MP4 output of the job: all the source's frames, and its tone bursts at the
/// source's times. Returns how many videos were checked.
pub fn check_outputs(
    job: &serde_json::Value,
    source: &Path,
    frames: u64,
) -> Result<usize, Box<dyn std::error::Error>> {
    let manifest_path = Path::new(job["manifest"].as_str().ok_or("no manifest")?);
    let manifest = super::read_json(manifest_path)?;
    let dir = manifest_path.parent().ok_or("no dir")?;
    let want = super::burst_onsets(source)?;
    let mut videos = 0;
    for o in manifest["outputs"].as_array().ok_or("no outputs")? {
        let Some(file) = o["path"].as_str().filter(|f| f.ends_with(".mp4")) else {
            continue;
        };
        videos += 1;
        let path = dir.join(file);
        let counted = super::ffprobe(&path, "stream=nb_read_packets", "v:0")?;
        assert!(
            counted.contains(&format!("nb_read_packets={frames}")),
            "{file}: {counted}"
        );
        let got = super::burst_onsets(&path)?;
        assert_eq!(got.len(), want.len(), "{file}: bursts {got:?} vs {want:?}");
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() < 0.03,
                "{file}: burst at {g} s, the source's at {w} s"
            );
        }
    }
    Ok(videos)
}

/// testsrc2 repeats itself every second, so its 1 s chunks are byte-identical twins;
/// temporal noise makes every chunk its own. Tone bursts at each second's start.
pub fn make_distinct_clip(path: &Path, seconds: u32) -> Result<(), String> {
    make_noisy_clip(path, "320x240", seconds)
}

/// [`make_distinct_clip`] at `size` (noise also makes each frame costly to encode).
pub fn make_noisy_clip(path: &Path, size: &str, seconds: u32) -> Result<(), String> {
    let args: Vec<String> = [
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=s={size}:r=25:d={seconds},noise=alls=12:allf=t"),
        "-f",
        "lavfi",
        "-i",
        &format!("aevalsrc=0.5*sin(2*PI*1000*t)*lt(mod(t\\,1)\\,0.1):s=48000:d={seconds}"),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "25",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
    ]
    .iter()
    .map(|a| a.to_string())
    .chain([path.display().to_string()])
    .collect();
    super::run_ok("ffmpeg", &args)
}

/// Submits `dir/media/<name>` to the coordinator's `web` workflow, published under
/// `dir/published`; the job's id.
pub fn submit(d: &Daemon, dir: &Path, name: &str) -> Result<String, String> {
    let (code, body) = d.submit(&serde_json::json!({
        "input": dir.join("media").join(name).display().to_string(),
        "workflow": "web",
        "output": dir.join("published").display().to_string(),
    }));
    match body["id"].as_str() {
        Some(id) if code < 300 => Ok(id.to_string()),
        _ => Err(format!("submit answered {code}: {body}")),
    }
}
