//! `spool watch` as a real daemon process on the real file system: files admitted only when
//! complete, partial names ignored, renames and duplicates not encoded again, corrupt files
//! parked while others flow, SIGKILL and restart, SIGTERM, the API, metrics, webhooks and
//! schedule windows that pause a running encode.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

struct Daemon {
    child: Child,
    dir: PathBuf,
}

impl Daemon {
    /// A daemon over `dir/in` → `dir/out`, with `extra` YAML added to the workflow.
    fn start(
        dir: &Path,
        extra: &str,
        env: &[(&str, String)],
    ) -> Result<Daemon, Box<dyn std::error::Error>> {
        std::fs::create_dir_all(dir.join("in"))?;
        // `extra` may replace the chunking or the profiles.
        let chunking = if extra.contains("chunking:") {
            ""
        } else {
            "chunking: {segment_seconds: 1, min_duration_seconds: 0}\n"
        };
        let profiles = if extra.contains("profiles:") {
            ""
        } else {
            "profiles:\n- {name: p144, codec: h264, height: 144, always_encode: true, preset: ultrafast}\n"
        };
        let wf = format!(
            "version: 1\nname: drop\n{chunking}encode: {{mode: ladder, keyframe_interval_seconds: 1}}\n{profiles}\
             watch:\n  folders: [in]\n  output: out\n  settle_seconds: 1.5\n  rescan_seconds: 2\n  max_attempts: 1\n{extra}"
        );
        std::fs::write(dir.join("wf.yaml"), wf)?;
        std::fs::write(
            dir.join("spool.yaml"),
            "state: state\nlisten: 127.0.0.1:0\nworkflows: [wf.yaml]\ngrace_seconds: 10\nconcurrency: 2\n",
        )?;
        Daemon::spawn(dir, env)
    }

    fn spawn(dir: &Path, env: &[(&str, String)]) -> Result<Daemon, Box<dyn std::error::Error>> {
        let _ = std::fs::remove_file(dir.join("state/daemon.json"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("watch.log"))?;
        let mut cmd = Command::new(spool_path());
        cmd.args(["watch", "--log-format", "json", "--config"])
            .arg(dir.join("spool.yaml"))
            .env("SPOOL_LOG", "spool=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn()?;
        let d = Daemon {
            child,
            dir: dir.to_path_buf(),
        };
        wait_until("the daemon's API", Duration::from_secs(20), || {
            d.url().is_some()
        })?;
        Ok(d)
    }

    fn url(&self) -> Option<String> {
        let text = std::fs::read(self.dir.join("state/daemon.json")).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
        v["url"].as_str().map(String::from)
    }

    fn get(&self, path: &str) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
        let url = format!("{}{path}", self.url().ok_or("no daemon")?);
        Ok(ureq::get(&url).call()?.into_json()?)
    }

    fn files(&self) -> Vec<serde_json::Value> {
        self.get("/v1/files")
            .ok()
            .and_then(|v| v["files"].as_array().cloned())
            .unwrap_or_default()
    }

    fn jobs(&self) -> Vec<serde_json::Value> {
        self.get("/v1/jobs")
            .ok()
            .and_then(|v| v["jobs"].as_array().cloned())
            .unwrap_or_default()
    }

    fn file_status(&self, name: &str) -> Option<String> {
        self.files().into_iter().find_map(|f| {
            let hit = f["paths"]
                .as_array()?
                .iter()
                .any(|p| p.as_str().is_some_and(|p| p.ends_with(name)));
            hit.then(|| f["status"].as_str().unwrap_or("").to_string())
        })
    }

    fn wait_status(&self, name: &str, status: &str, secs: u64) -> Result<(), String> {
        wait_until(
            &format!("{name} {status}"),
            Duration::from_secs(secs),
            || self.file_status(name).as_deref() == Some(status),
        )
    }

    fn term(mut self) -> Result<i32, Box<dyn std::error::Error>> {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        Ok(self.child.wait()?.code().unwrap_or(-1))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clip(path: &Path, seconds: u32) -> Result<(), String> {
    make_clip(path, "256x144", 25, seconds, Audio::Bursts)
}

#[test]
fn files_are_taken_only_when_complete_and_known_by_content() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = Daemon::start(dir.path(), "", &[])?;
    let src = dir.path().join("src.mp4");
    clip(&src, 2)?;
    let bytes = std::fs::read(&src)?;

    // Written slowly, in pieces, over about 3 s: taken once, whole.
    let target = d.dir.join("in/slow.mp4");
    let mut f = std::fs::File::create(&target)?;
    for piece in bytes.chunks(bytes.len() / 6 + 1) {
        f.write_all(piece)?;
        f.flush()?;
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(f);
    d.wait_status("slow.mp4", "done", 60)?;
    let jobs = d.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["input_size"].as_u64(), Some(bytes.len() as u64));
    assert_eq!(jobs[0]["status"], "succeeded");

    // A partial-upload name is ignored until it is renamed.
    let part = d.dir.join("in/other.mp4.part");
    clip(&dir.path().join("other.mp4"), 1)?;
    std::fs::copy(dir.path().join("other.mp4"), &part)?;
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(d.jobs().len(), 1, "a .part file was taken: {:?}", d.jobs());
    std::fs::rename(&part, d.dir.join("in/other.mp4"))?;
    d.wait_status("other.mp4", "done", 60)?;

    // A rename and a copy of finished content: no new job.
    std::fs::rename(d.dir.join("in/slow.mp4"), d.dir.join("in/renamed.mp4"))?;
    std::fs::copy(d.dir.join("in/renamed.mp4"), d.dir.join("in/copy.mp4"))?;
    wait_until("the copy to be recognised", Duration::from_secs(30), || {
        d.files().iter().any(|f| {
            f["paths"].as_array().is_some_and(|p| {
                p.iter()
                    .any(|x| x.as_str().is_some_and(|x| x.ends_with("copy.mp4")))
            })
        })
    })?;
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        d.jobs().len(),
        2,
        "renamed or copied content was encoded again"
    );
    assert!(!dir.path().join("out/renamed").exists() && !dir.path().join("out/copy").exists());
    assert_eq!(d.term()?, 0, "SIGTERM exits 0");
    Ok(())
}

#[test]
fn a_corrupt_file_is_parked_while_others_flow_and_retry_brings_it_back() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = Daemon::start(dir.path(), "", &[])?;
    std::fs::write(d.dir.join("in/broken.mp4"), b"this is not a video")?;
    clip(&d.dir.join("in/fine.mp4"), 2)?;
    d.wait_status("broken.mp4", "parked", 60)?;
    d.wait_status("fine.mp4", "done", 60)?;
    let parked = d
        .files()
        .into_iter()
        .find(|f| f["status"] == "parked")
        .unwrap_or_default();
    assert!(
        parked["reason"]
            .as_str()
            .unwrap_or("")
            .contains("not a media file"),
        "{parked}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        d.jobs().len(),
        2,
        "a parked file is not tried again by itself"
    );

    // Retried through the CLI (which asks the daemon): taken once more, parked again.
    let broken = d.dir.join("in/broken.mp4");
    let job_before = d
        .jobs()
        .into_iter()
        .find(|j| j["status"] == "failed")
        .unwrap_or_default();
    let out = spool()
        .args(["retry"])
        .arg(&broken)
        .arg("--state")
        .arg(d.dir.join("state"))
        .assert()
        .success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("1 file(s)"));
    d.wait_status("broken.mp4", "parked", 60)?;
    let job_after = d.get(&format!(
        "/v1/jobs/{}",
        job_before["id"].as_str().unwrap_or("")
    ))?;
    assert!(
        job_after["job"]["updated_ms"].as_u64() > job_before["updated_ms"].as_u64(),
        "retry ran it once more: {job_before} / {job_after}"
    );

    // /metrics is Prometheus text.
    let url = format!("{}/metrics", d.url().ok_or("no url")?);
    let text = ureq::get(&url).call()?.into_string()?;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, value) = line.rsplit_once(' ').ok_or(line)?;
        assert!(value.parse::<f64>().is_ok(), "{line}");
        assert!(name.starts_with("spool_"), "{line}");
    }
    assert!(text.contains("spool_files{state=\"parked\"} 1"), "{text}");
    assert!(text.contains("spool_jobs{state=\"succeeded\"} 1"), "{text}");
    assert!(text.contains("spool_bytes_out_total"));
    let cache_bytes = text
        .lines()
        .find_map(|l| l.strip_prefix("spool_cache_bytes "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        cache_bytes > Some(0),
        "the encoded chunks are counted: {text}"
    );
    assert!(text.contains("spool_cache_evictions_total 0"), "{text}");
    assert!(text.contains("spool_cache_limit_bytes "), "{text}");
    // status goes through the API while the daemon holds the state.
    let status = spool()
        .args(["status", "--state"])
        .arg(d.dir.join("state"))
        .assert()
        .success();
    assert!(String::from_utf8_lossy(&status.get_output().stdout).contains("fine.mp4"));
    assert_eq!(d.term()?, 0);
    Ok(())
}

#[test]
fn sigkill_mid_encode_then_restart_finishes_without_duplicates() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = capture_server()?;
    let hook = format!("webhooks:\n- url: {}\n  events: [succeeded]\n", server.url);
    let mut d = Daemon::start(dir.path(), &hook, &[])?;
    let src = d.dir.join("in/long.mp4");
    make_clip(&src, "426x240", 25, 10, Audio::Bursts)?;
    let work = d.dir.join("state/work").display().to_string();
    wait_until("an encode", Duration::from_secs(60), || {
        ffmpeg_processes_mentioning(&format!("{work}/")) > 0
            && ffmpeg_processes_mentioning("/enc/t0") > 0
    })?;
    d.child.kill()?;
    d.child.wait()?;
    let d = Daemon::spawn(dir.path(), &[])?;
    d.wait_status("long.mp4", "done", 120)?;
    let jobs = d.jobs();
    let done: Vec<_> = jobs.iter().filter(|j| j["status"] == "succeeded").collect();
    assert_eq!(done.len(), 1, "{jobs:?}");
    let out = dir.path().join("out/long");
    let mut names: Vec<String> = std::fs::read_dir(&out)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["long.p144.mp4", "manifest.json"]);
    assert_eq!(
        probe_value(&out.join("long.p144.mp4"), "v:0", "nb_read_packets"),
        Some(250.0)
    );
    wait_until("the webhook", Duration::from_secs(10), || {
        !server.received().is_empty()
    })?;
    assert!(server.received()[0].contains("\"event\":\"succeeded\""));
    assert_eq!(d.term()?, 0);
    Ok(())
}

#[test]
fn cancel_through_the_api_parks_the_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = Daemon::start(dir.path(), "", &[])?;
    make_clip(&d.dir.join("in/big.mp4"), "426x240", 25, 12, Audio::None)?;
    wait_until("a running job", Duration::from_secs(60), || {
        d.jobs().iter().any(|j| j["status"] == "running")
            && ffmpeg_processes_mentioning("/enc/t0") > 0
    })?;
    let id = d.jobs()[0]["id"].as_str().unwrap_or_default().to_string();
    spool()
        .args(["cancel", &id, "--state"])
        .arg(d.dir.join("state"))
        .assert()
        .success();
    d.wait_status("big.mp4", "parked", 30)?;
    let job = d.get(&format!("/v1/jobs/{id}"))?;
    assert_eq!(job["job"]["status"], "cancelled");
    assert_eq!(
        ffmpeg_processes_mentioning(&d.dir.join("state").display().to_string()),
        0
    );
    assert_eq!(d.term()?, 0);
    Ok(())
}

/// States (R, S, T, …) of the ffmpeg processes whose arguments contain both needles.
fn process_states(needle: &str, and: &str) -> Vec<char> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                c.split(|b| *b == 0)
                    .next()
                    .is_some_and(|a| a.ends_with(b"ffmpeg"))
                    && String::from_utf8_lossy(&c).contains(needle)
                    && String::from_utf8_lossy(&c).contains(and)
            })
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|s| {
            s.rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next())
        })
        .collect()
}

#[test]
fn a_schedule_window_pauses_a_running_encode_and_resumes_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = dir.path().join("clock");
    std::fs::write(&clock, "mon 12:00")?;
    // One slow ffmpeg to pause: no chunks, a slow preset.
    let schedule = "chunking: {enabled: false}\n\
                    profiles:\n- {name: p144, codec: h264, height: 144, always_encode: true, preset: veryslow}\n\
                    schedule:\n  windows: [{from: \"08:00\", to: \"20:00\"}]\n  outside: pause\n";
    let d = Daemon::start(
        dir.path(),
        schedule,
        &[("SPOOL_CLOCK_FILE", clock.display().to_string())],
    )?;
    make_clip(
        &d.dir.join("in/night.mp4"),
        "640x360",
        25,
        20,
        Audio::Bursts,
    )?;
    let ours = d.dir.join("state/work").display().to_string();
    let encodes = || process_states(&ours, "/enc/t");
    wait_until("an encode", Duration::from_secs(60), || {
        !encodes().is_empty()
    })?;
    std::fs::write(&clock, "mon 21:00")?;
    wait_until("ffmpeg stopped", Duration::from_secs(10), || {
        let s = encodes();
        !s.is_empty() && s.iter().all(|c| *c == 'T')
    })?;
    std::thread::sleep(Duration::from_secs(2));
    assert!(encodes().iter().all(|c| *c == 'T'), "still paused");
    assert_ne!(d.file_status("night.mp4").as_deref(), Some("done"));
    std::fs::write(&clock, "mon 12:00")?;
    d.wait_status("night.mp4", "done", 180)?;
    let out = dir.path().join("out/night/night.p144.mp4");
    assert_eq!(probe_value(&out, "v:0", "nb_read_packets"), Some(500.0));
    assert_eq!(d.term()?, 0);
    Ok(())
}

/// A workflow for the two-schedule test: its own folder, output and window.
fn scheduled(dir: &Path, name: &str, window: &str) -> Result<(), std::io::Error> {
    std::fs::create_dir_all(dir.join(format!("in-{name}")))?;
    std::fs::write(
        dir.join(format!("{name}.yaml")),
        format!(
            "version: 1\nname: {name}\nchunking: {{enabled: false}}\n\
             encode: {{mode: ladder, keyframe_interval_seconds: 1}}\n\
             profiles:\n- {{name: p144, codec: h264, height: 144, always_encode: true, preset: veryslow}}\n\
             watch: {{folders: [in-{name}], output: out-{name}, settle_seconds: 1, rescan_seconds: 2}}\n\
             schedule: {{windows: [{window}], outside: pause}}\n"
        ),
    )
}

#[test]
fn one_workflows_closed_window_pauses_only_its_own_encodes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = dir.path().join("clock");
    std::fs::write(&clock, "mon 12:00")?;
    scheduled(dir.path(), "day", "{from: \"08:00\", to: \"20:00\"}")?;
    // from == to: the whole day.
    scheduled(dir.path(), "always", "{from: \"00:00\", to: \"00:00\"}")?;
    std::fs::write(
        dir.path().join("spool.yaml"),
        "state: state\nlisten: 127.0.0.1:0\nworkflows: [day.yaml, always.yaml]\ngrace_seconds: 10\nconcurrency: 2\n",
    )?;
    let d = Daemon::spawn(
        dir.path(),
        &[("SPOOL_CLOCK_FILE", clock.display().to_string())],
    )?;
    for name in ["day", "always"] {
        make_clip(
            &dir.path().join(format!("in-{name}/{name}.mp4")),
            "640x360",
            25,
            16,
            Audio::Bursts,
        )?;
    }
    let states = |name: &str| process_states(&format!("/in-{name}/"), "/enc/t");
    wait_until("both encoding", Duration::from_secs(60), || {
        !states("day").is_empty() && !states("always").is_empty()
    })?;
    // 21:00: the day window closes; the always-open workflow must not notice.
    std::fs::write(&clock, "mon 21:00")?;
    wait_until("the day encode stopped", Duration::from_secs(10), || {
        let s = states("day");
        !s.is_empty() && s.iter().all(|c| *c == 'T')
    })?;
    let always = states("always");
    assert!(
        !always.is_empty() && always.iter().all(|c| *c != 'T'),
        "the open workflow was paused too: {always:?}"
    );
    d.wait_status("always.mp4", "done", 180)?;
    assert!(states("day").iter().all(|c| *c == 'T'), "day still paused");
    assert_ne!(d.file_status("day.mp4").as_deref(), Some("done"));
    std::fs::write(&clock, "mon 12:00")?;
    d.wait_status("day.mp4", "done", 180)?;
    for name in ["day", "always"] {
        let out = dir
            .path()
            .join(format!("out-{name}/{name}/{name}.p144.mp4"));
        assert_eq!(
            probe_value(&out, "v:0", "nb_read_packets"),
            Some(400.0),
            "{name}"
        );
    }
    assert_eq!(d.term()?, 0);
    Ok(())
}

#[test]
fn a_hook_that_hangs_in_c_fails_its_file_and_the_daemon_goes_on() -> TestResult {
    let dir = tempfile::tempdir()?;
    // Backtracking inside string.find: C code, which no Lua clock can interrupt.
    std::fs::write(
        dir.path().join("hang.lua"),
        "local M = {}\nfunction M.on_discover(file)\n\
         if file.name:find('^stuck') then string.find(string.rep('a', 4000), '.-.-.-.-b') end\n\
         return nil\nend\nreturn M\n",
    )?;
    let d = Daemon::start(
        dir.path(),
        "script: {path: hang.lua, hooks: [on_discover]}\n",
        &[],
    )?;
    clip(&d.dir.join("in/stuck.mp4"), 2)?;
    clip(&d.dir.join("in/fine.mp4"), 3)?;
    d.wait_status("fine.mp4", "done", 60)?;
    d.wait_status("stuck.mp4", "parked", 60)?;
    let parked = d
        .files()
        .into_iter()
        .find(|f| f["status"] == "parked")
        .ok_or("no parked file")?;
    assert!(
        parked["reason"]
            .as_str()
            .unwrap_or("")
            .contains("time limit"),
        "{parked}"
    );
    // Still serving, and stops cleanly.
    assert_eq!(d.get("/v1/health")?["ok"], true);
    assert_eq!(d.term()?, 0);
    Ok(())
}

/// A daemon over `dir/in` whose rescans are 10 minutes apart: what it finds, it finds by
/// its events.
fn start_eventful(dir: &Path) -> Result<Daemon, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir.join("in"))?;
    std::fs::write(
        dir.join("wf.yaml"),
        "version: 1\nname: drop\nchunking: {segment_seconds: 1, min_duration_seconds: 0}\n\
         encode: {mode: ladder, keyframe_interval_seconds: 1}\n\
         profiles:\n- {name: p144, codec: h264, height: 144, always_encode: true, preset: ultrafast}\n\
         watch: {folders: [in], output: out, settle_seconds: 1, rescan_seconds: 600, max_attempts: 1}\n",
    )?;
    std::fs::write(
        dir.join("spool.yaml"),
        "state: state\nlisten: 127.0.0.1:0\nworkflows: [wf.yaml]\nconcurrency: 2\n",
    )?;
    Daemon::spawn(dir, &[])
}

#[test]
fn twins_dropped_at_once_are_encoded_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = Daemon::start(dir.path(), "", &[])?;
    let staging = dir.path().join("staging");
    std::fs::create_dir_all(&staging)?;
    let a = staging.join("a.mp4");
    clip(&a, 3)?;
    std::fs::copy(&a, staging.join("b.mp4"))?;
    // Both appear in the same instant, and settle in the same window.
    std::fs::rename(&a, d.dir.join("in/a.mp4"))?;
    std::fs::rename(staging.join("b.mp4"), d.dir.join("in/b.mp4"))?;
    wait_until("both files known", Duration::from_secs(60), || {
        d.files()
            .first()
            .and_then(|f| f["paths"].as_array().map(|p| p.len()))
            == Some(2)
            && d.file_status("a.mp4").as_deref() == Some("done")
    })?;
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        d.files().len(),
        1,
        "one content, one record: {:?}",
        d.files()
    );
    assert_eq!(d.jobs().len(), 1, "encoded once: {:?}", d.jobs());
    let outs: Vec<_> = std::fs::read_dir(dir.path().join("out"))?
        .flatten()
        .collect();
    assert_eq!(outs.len(), 1, "one output folder");
    assert_eq!(d.term()?, 0);
    Ok(())
}

#[test]
fn sidecars_are_left_alone_and_a_moved_in_folder_is_walked_at_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = start_eventful(dir.path())?;
    for (name, text) in [
        ("movie.nfo", "ANSI art\n"),
        ("notes.txt", "hello\n"),
        ("cover.jpg", "jpg"),
    ] {
        std::fs::write(d.dir.join("in").join(name), text)?;
    }
    // A folder made elsewhere, with a clip inside, then moved in whole.
    let outside = dir.path().join("season1");
    std::fs::create_dir_all(outside.join("disc1"))?;
    clip(&outside.join("disc1/ep1.mp4"), 2)?;
    std::fs::rename(&outside, d.dir.join("in/season1"))?;
    d.wait_status("ep1.mp4", "done", 30)?;
    std::thread::sleep(Duration::from_secs(2));
    let files = d.files();
    assert_eq!(files.len(), 1, "only the video was taken: {files:?}");
    assert!(
        !dir.path().join("out/season1").exists(),
        "the folder itself is no file"
    );
    assert_eq!(d.term()?, 0);
    Ok(())
}

#[test]
fn text_read_as_ansi_video_is_not_published() -> TestResult {
    let dir = tempfile::tempdir()?;
    let nfo = dir.path().join("release.nfo");
    std::fs::write(&nfo, "   ___ ___\n  |  RELEASE  |\n  Video: 1080p\n")?;
    let wf = write_workflow(dir.path(), "w", "")?;
    let out = outcomes(
        &spool()
            .args(["run", "--json", "--workflow"])
            .arg(&wf)
            .arg("--out")
            .arg(dir.path().join("out"))
            .arg("--state")
            .arg(dir.path().join("state"))
            .arg(&nfo)
            .assert()
            .code(1)
            .get_output()
            .stdout,
    );
    let reason = out[0]["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("not a video") && reason.contains("tty"),
        "{reason}"
    );
    assert!(!dir.path().join("out/release/manifest.json").exists());
    Ok(())
}

#[test]
fn two_workflows_may_not_claim_one_folder() -> TestResult {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("in/sub"))?;
    for (name, folder) in [("a", "in"), ("b", "in/sub")] {
        std::fs::write(
            dir.path().join(format!("{name}.yaml")),
            format!("version: 1\nname: {name}\nprofiles:\n- {{name: p, codec: h264, height: 144}}\nwatch: {{folders: [{folder}], output: out-{name}}}\n"),
        )?;
    }
    std::fs::write(
        dir.path().join("spool.yaml"),
        "state: state\nworkflows: [a.yaml, b.yaml]\n",
    )?;
    let out = spool()
        .args(["watch", "--config"])
        .arg(dir.path().join("spool.yaml"))
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("both claim") && stderr.contains("in/sub"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn markers_polling_symlink_loops_and_json_logs() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = Daemon::start(dir.path(), "  marker: .done\n  poll: true\n", &[])?;
    // A symlink loop in the watched folder must not trap the scan.
    std::os::unix::fs::symlink(".", d.dir.join("in/loop"))?;
    std::fs::create_dir_all(d.dir.join("in/sub"))?;
    std::os::unix::fs::symlink("../sub", d.dir.join("in/sub/again"))?;
    let clip_path = d.dir.join("in/sub/marked.mp4");
    clip(&clip_path, 1)?;
    std::thread::sleep(Duration::from_secs(4));
    assert!(d.jobs().is_empty(), "taken before its marker");
    std::fs::write(d.dir.join("in/sub/marked.mp4.done"), b"")?;
    d.wait_status("marked.mp4", "done", 60)?;
    // A file that vanishes while settling is simply not taken.
    clip(&d.dir.join("in/gone.mp4"), 1)?;
    std::fs::remove_file(d.dir.join("in/gone.mp4"))?;
    std::fs::write(d.dir.join("in/gone.mp4.done"), b"")?;
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(d.jobs().len(), 1);
    assert_eq!(d.term()?, 0);
    // Every log line is one JSON object; lines about the file carry its name.
    let log = std::fs::read_to_string(dir.path().join("watch.log"))?;
    let mut about_file = 0;
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))?;
        if v["span"]["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("marked.mp4"))
        {
            about_file += 1;
        }
    }
    assert!(about_file > 0, "{log}");
    Ok(())
}
