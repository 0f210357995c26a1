//! Shared helpers for the end-to-end tests: real ffmpeg, generated media, the real binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub mod api;
pub mod browser;
pub mod cluster;
pub mod proxy;
pub mod sources;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub enum Audio {
    None,
    /// A 1 kHz burst for the first 100 ms of every second: lets a test find drift.
    Bursts,
}

/// Makes a test clip with lavfi sources; GOP of one second so segments cut at whole seconds.
pub fn make_clip(
    path: &Path,
    size: &str,
    fps: u32,
    seconds: u32,
    audio: Audio,
) -> Result<(), String> {
    let mut args: Vec<String> = vec![
        "-hide_banner".into(),
        "-loglevel".into(),
        "error".into(),
        "-y".into(),
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("testsrc2=s={size}:r={fps}:d={seconds}"),
    ];
    if let Audio::Bursts = audio {
        args.extend(["-f", "lavfi", "-i"].map(String::from));
        args.push(format!(
            "aevalsrc=0.5*sin(2*PI*1000*t)*lt(mod(t\\,1)\\,0.1):s=48000:d={seconds}"
        ));
    }
    args.extend(
        [
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-g",
        ]
        .map(String::from),
    );
    args.push(fps.to_string());
    if let Audio::Bursts = audio {
        args.extend(["-c:a", "aac", "-b:a", "128k"].map(String::from));
    }
    args.push(path.display().to_string());
    run_ok("ffmpeg", &args)
}

pub fn run_ok(program: &str, args: &[String]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A small, fast workflow: 1 s segments, ultrafast x264, 144p always + 180p + 240p.
pub fn write_workflow(dir: &Path, name: &str, extra: &str) -> Result<PathBuf, std::io::Error> {
    let text = format!(
        "version: 1\nname: {name}\n\
         chunking: {{segment_seconds: 1, min_duration_seconds: 0}}\n\
         encode: {{mode: ladder, keyframe_interval_seconds: 1, concurrency: 2}}\n\
         retries: {{max_attempts: 2, backoff_seconds: 0.1}}\n{extra}"
    );
    let text = if text.contains("profiles:") {
        text
    } else {
        format!(
            "{text}profiles:\n\
             - {{name: p144, codec: h264, height: 144, always_encode: true, preset: ultrafast}}\n\
             - {{name: p180, codec: h264, height: 180, preset: ultrafast}}\n\
             - {{name: p240, codec: h264, height: 240, preset: ultrafast}}\n"
        )
    };
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

pub fn spool() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("spool")
        .unwrap_or_else(|e| unreachable!("spool binary: {e}"));
    cmd.env("SPOOL_LOG", "spool=info");
    cmd
}

pub fn spool_path() -> PathBuf {
    assert_cmd::cargo::cargo_bin("spool")
}

/// Parses `spool run --json` stdout: one object per job.
pub fn outcomes(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub fn read_json(path: &Path) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    Ok(serde_json::from_slice(&std::fs::read(path)?)?)
}

pub fn ffprobe(path: &Path, entries: &str, stream: &str) -> Result<String, String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            stream,
            "-count_packets",
            "-show_entries",
            entries,
            "-of",
            "default=nw=1",
        ])
        .arg(path)
        .output()
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn probe_value(path: &Path, stream: &str, key: &str) -> Option<f64> {
    let text = ffprobe(path, &format!("stream={key}"), stream).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}="))?.parse().ok())
}

/// Decodes the audio and returns where each tone burst starts, in seconds (1 ms windows).
pub fn burst_onsets(path: &Path) -> Result<Vec<f64>, String> {
    burst_onsets_of(path, 0)
}

/// [`burst_onsets`] of audio track `track`.
pub fn burst_onsets_of(path: &Path, track: usize) -> Result<Vec<f64>, String> {
    let map = format!("0:a:{track}");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", &map, "-ac", "1", "-ar", "48000", "-f", "f32le", "-"])
        .output()
        .map_err(|e| e.to_string())?;
    let samples: Vec<f32> = out
        .stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let window = 48;
    let peaks: Vec<f32> = samples
        .chunks(window)
        .map(|w| w.iter().fold(0f32, |m, s| m.max(s.abs())))
        .collect();
    let mut onsets = Vec::new();
    let mut quiet_for = 100;
    for (i, p) in peaks.iter().enumerate() {
        if *p > 0.2 {
            if quiet_for >= 50 {
                onsets.push(i as f64 / 1000.0);
            }
            quiet_for = 0;
        } else {
            quiet_for += 1;
        }
    }
    Ok(onsets)
}

/// Lists names under `dir` (recursively) that contain `needle`.
pub fn find_files(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if e.file_name().to_string_lossy().contains(needle) {
                found.push(p);
            }
        }
    }
    found
}

/// ffmpeg processes whose arguments mention `needle`.
pub fn ffmpeg_processes_mentioning(needle: &str) -> usize {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    procs
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| {
            c.split(|b| *b == 0)
                .next()
                .is_some_and(|a| a.ends_with(b"ffmpeg"))
        })
        .filter(|c| String::from_utf8_lossy(c).contains(needle))
        .count()
}

/// A local HTTP server that answers 200 to every request and keeps the bodies it got.
pub struct Capture {
    pub url: String,
    pub bodies: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

pub fn capture_server() -> Result<Capture, std::io::Error> {
    capture_server_failing(0)
}

/// Like `capture_server`, but the first `fail_first` requests get 503 and are not kept.
pub fn capture_server_failing(fail_first: usize) -> Result<Capture, std::io::Error> {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = bodies.clone();
    std::thread::spawn(move || {
        let mut refused = 0;
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut length = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                let l = line.trim().to_ascii_lowercase();
                if l.is_empty() {
                    break;
                }
                if let Some(v) = l.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; length];
            let read = reader.read_exact(&mut body).is_ok();
            if refused < fail_first {
                refused += 1;
                let _ = (&stream).write_all(
                    b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            }
            if read {
                if let Ok(mut b) = kept.lock() {
                    b.push(String::from_utf8_lossy(&body).into_owned());
                }
            }
            let _ = (&stream)
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    Ok(Capture { url, bodies })
}

impl Capture {
    pub fn received(&self) -> Vec<String> {
        self.bodies.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

/// Polls `done` until it holds or `limit` passes.
pub fn wait_until(
    what: &str,
    limit: std::time::Duration,
    mut done: impl FnMut() -> bool,
) -> Result<(), String> {
    let start = std::time::Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(())
}

/// Runs ffmpeg quietly with `args` (overwriting outputs).
pub fn ffmpeg(args: &[&str]) -> Result<(), String> {
    let mut all = vec!["-hide_banner", "-loglevel", "error", "-y"];
    all.extend(args);
    run_ok(
        "ffmpeg",
        &all.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    )
}

/// `spool run --json` into `dir/out` with state in `dir/state`; inputs and options follow.
pub fn run_command(wf: &Path, dir: &Path) -> assert_cmd::Command {
    let mut cmd = spool();
    cmd.args(["run", "--json", "--workflow"])
        .arg(wf)
        .arg("--out")
        .arg(dir.join("out"))
        .arg("--state")
        .arg(dir.join("state"));
    cmd
}

/// `spool run --json` of one input into `dir/out` with state in `dir/state`.
pub fn run_one(wf: &Path, dir: &Path, src: &Path) -> assert_cmd::assert::Assert {
    run_command(wf, dir).arg(src).assert()
}

/// [`run_one`], which must succeed; its one result.
pub fn run_succeeds(
    wf: &Path,
    dir: &Path,
    src: &Path,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let out = outcomes(&run_one(wf, dir, src).success().get_output().stdout);
    assert_eq!(out[0]["status"], "succeeded", "{out:?}");
    Ok(out[0].clone())
}

/// [`run_one`], which must fail; its results.
pub fn run_fails(
    wf: &Path,
    dir: &Path,
    src: &Path,
) -> Result<Vec<serde_json::Value>, Box<dyn std::error::Error>> {
    Ok(outcomes(
        &run_one(wf, dir, src).failure().get_output().stdout,
    ))
}

/// The scoring ffmpeg: `$SPOOL_METRICS_FFMPEG`, else the imageio-ffmpeg wheel's.
pub fn metrics_ffmpeg() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("SPOOL_METRICS_FFMPEG") {
        return Ok(PathBuf::from(p));
    }
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())",
        ])
        .current_dir("/")
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || path.is_empty() {
        return Err("no ffmpeg with libvmaf: run .ci/setup (pip install imageio-ffmpeg)".into());
    }
    Ok(PathBuf::from(path))
}

/// The phases of the commands a run traced with `--trace-commands`, in order.
pub fn traced_phases(trace: &Path) -> Vec<String> {
    std::fs::read_to_string(trace)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["phase"].as_str().map(String::from))
        .collect()
}

/// A file's SHA-256, in lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(hex::encode(sha2::Sha256::digest(&bytes)))
}
