//! The crash loop: `spool watch` is SIGKILLed at random moments 20 times while it works
//! through a folder, and restarted each time. At the end every file is done exactly once,
//! every output is verified, no temp file is left, every original is there and no task is
//! Running without a process. Slow, so `#[ignore]`d: CI runs it (`cargo test -- --ignored`).
//! The seed is printed; SPOOL_CRASH_SEED=<seed> replays a run.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.next() % (to - from))
    }
}

fn start(dir: &Path) -> Result<Child, std::io::Error> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("watch.log"))?;
    Command::new(spool_path())
        .args(["watch", "--config"])
        .arg(dir.join("spool.yaml"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
}

fn api(dir: &Path, path: &str) -> Option<serde_json::Value> {
    let text = std::fs::read(dir.join("state/daemon.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let url = format!("{}{path}", v["url"].as_str()?);
    ureq::get(&url).call().ok()?.into_json().ok()
}

#[test]
#[ignore = "slow fault test (about 40 s): CI runs it with `cargo test -- --ignored`"]
fn twenty_sigkills_lose_nothing_and_finish_everything_once() -> TestResult {
    let seed = std::env::var("SPOOL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("crash loop seed: {seed} (SPOOL_CRASH_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    std::fs::create_dir_all(d.join("in"))?;
    let names = ["a", "b", "c", "d"];
    for (i, n) in names.iter().enumerate() {
        make_clip(
            &d.join(format!("in/{n}.mp4")),
            "320x180",
            25,
            4 + i as u32,
            Audio::Bursts,
        )?;
    }
    std::fs::write(
        d.join("wf.yaml"),
        "version: 1\nname: crash\nchunking: {segment_seconds: 1, min_duration_seconds: 0}\n\
         encode: {mode: ladder, keyframe_interval_seconds: 1}\n\
         profiles:\n- {name: p144, codec: h264, height: 144, always_encode: true, preset: veryfast}\n\
         - {name: p180, codec: h264, height: 180, preset: veryfast}\n\
         steps:\n- hls: {segment_seconds: 2}\n\
         watch: {folders: [in], output: out, settle_seconds: 0.5, rescan_seconds: 2, max_attempts: 50}\n",
    )?;
    std::fs::write(
        d.join("spool.yaml"),
        "state: state\nlisten: 127.0.0.1:0\nworkflows: [wf.yaml]\nmax_jobs: 2\n",
    )?;
    let mut kills = 0;
    while kills < 20 {
        let mut child = start(d)?;
        std::thread::sleep(rng.millis(300, 2500));
        child.kill()?;
        child.wait()?;
        kills += 1;
    }
    eprintln!("{kills} SIGKILLs survived");
    let mut child = start(d)?;
    let started = Instant::now();
    let all_done = || {
        api(d, "/v1/files").is_some_and(|v| {
            let files = v["files"].as_array().cloned().unwrap_or_default();
            files.len() == names.len() && files.iter().all(|f| f["status"] == "done")
        })
    };
    while !all_done() {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "not finished after the crashes"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // No task is Running without a process behind it.
    let jobs = api(d, "/v1/jobs").ok_or("no jobs")?;
    let jobs = jobs["jobs"].as_array().cloned().unwrap_or_default();
    let mut succeeded = std::collections::HashMap::new();
    for j in &jobs {
        let id = j["id"].as_str().unwrap_or("");
        let detail = api(d, &format!("/v1/jobs/{id}")).ok_or("job")?;
        for t in detail["tasks"].as_array().into_iter().flatten() {
            assert_ne!(t["status"], "running", "task {t} is running with no job");
        }
        if j["status"] == "succeeded" {
            *succeeded
                .entry(j["input_md5"].as_str().unwrap_or("").to_string())
                .or_insert(0) += 1;
        }
    }
    assert_eq!(succeeded.len(), names.len(), "{jobs:?}");
    assert!(
        succeeded.values().all(|n| *n == 1),
        "a file finished twice: {succeeded:?}"
    );
    for (i, n) in names.iter().enumerate() {
        assert!(d.join(format!("in/{n}.mp4")).is_file(), "original {n} lost");
        let out = d.join(format!("out/{n}"));
        let frames = 25.0 * (4 + i) as f64;
        for rung in ["p144", "p180"] {
            let file = out.join(format!("{n}.{rung}.mp4"));
            assert_eq!(
                probe_value(&file, "v:0", "nb_read_packets"),
                Some(frames),
                "{}",
                file.display()
            );
        }
        assert!(out.join("manifest.json").is_file());
        assert!(out.join("hls/master.m3u8").is_file());
    }
    let leftovers: Vec<_> = find_files(&d.join("out"), "spool-tmp")
        .into_iter()
        .chain(find_files(&d.join("out"), ".spool-old"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )?;
    assert_eq!(child.wait()?.code(), Some(0));
    assert!(
        find_files(&d.join("state/work"), "").is_empty(),
        "work files left"
    );
    Ok(())
}
