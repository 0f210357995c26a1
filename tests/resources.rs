//! Resource faults: a full output disk (a small tmpfs) while `spool watch` runs, ffmpeg
//! missing, and a state directory that cannot be created.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Mounts a tmpfs of `size` at `dir`; false where this user may not mount.
fn mount_tmpfs(dir: &Path, size: &str) -> bool {
    std::fs::create_dir_all(dir).is_ok()
        && Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

struct Unmount<'a>(&'a Path);
impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

fn api(dir: &Path, path: &str) -> Option<serde_json::Value> {
    let text = std::fs::read(dir.join("state/daemon.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    ureq::get(&format!("{}{path}", v["url"].as_str()?))
        .call()
        .ok()?
        .into_json()
        .ok()
}

#[test]
fn a_full_disk_fails_the_job_cleanly_and_the_daemon_recovers() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let out = d.join("out");
    if !mount_tmpfs(&out, "512k") {
        eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
        return Ok(());
    }
    let _unmount = Unmount(&out);
    // Leave about 40 KB free: less than the outputs need.
    let filler = out.join("filler");
    let free = nix::sys::statvfs::statvfs(&out)?;
    let room = free.blocks_available() as u64 * free.fragment_size() as u64;
    std::fs::write(&filler, vec![0u8; room.saturating_sub(40 * 1024) as usize])?;
    std::fs::create_dir_all(d.join("in"))?;
    std::fs::write(
        d.join("wf.yaml"),
        "version: 1\nname: full\nchunking: {segment_seconds: 1, min_duration_seconds: 0}\n\
         encode: {mode: ladder, keyframe_interval_seconds: 1}\n\
         profiles:\n- {name: p240, codec: h264, height: 240, always_encode: true, preset: ultrafast, crf: 10}\n\
         watch: {folders: [in], output: out, settle_seconds: 0.5, rescan_seconds: 2, max_attempts: 10}\n",
    )?;
    std::fs::write(
        d.join("spool.yaml"),
        "state: state\nlisten: 127.0.0.1:0\nworkflows: [wf.yaml]\n",
    )?;
    let mut daemon = Command::new(spool_path())
        .args(["watch", "--config"])
        .arg(d.join("spool.yaml"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("watch.log"))?)
        .spawn()?;
    let src = d.join("in/big.mp4");
    make_clip(&src, "426x240", 25, 4, Audio::Bursts)?;
    let original = std::fs::read(&src)?;
    let file = || {
        api(d, "/v1/files")
            .and_then(|v| v["files"].as_array().and_then(|f| f.first().cloned()))
            .unwrap_or_default()
    };
    wait_until(
        "a failure for lack of space",
        Duration::from_secs(60),
        || file()["attempts"].as_u64().unwrap_or(0) >= 1,
    )?;
    let failed = file();
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap_or("")
            .contains("No space left on device"),
        "{failed}"
    );
    // Nothing half-written is left, and the original is untouched.
    let names: Vec<String> = std::fs::read_dir(&out)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let leftovers: Vec<_> = find_files(&out, "spool-tmp");
    assert!(leftovers.is_empty(), "{leftovers:?} in {names:?}");
    assert_eq!(std::fs::read(&src)?, original);
    // Space returns: the next scan takes the file again and it finishes.
    std::fs::remove_file(&filler)?;
    wait_until("recovery", Duration::from_secs(90), || {
        file()["status"] == "done"
    })?;
    let output = out.join("big/big.p240.mp4");
    assert_eq!(probe_value(&output, "v:0", "nb_read_packets"), Some(100.0));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )?;
    assert_eq!(daemon.wait()?.code(), Some(0));
    Ok(())
}

#[test]
fn missing_ffmpeg_and_an_impossible_state_dir_are_clear_errors() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("c.mp4");
    make_clip(&src, "256x144", 25, 1, Audio::None)?;
    let out = spool()
        .env("SPOOL_FFMPEG", dir.path().join("no-ffmpeg-here"))
        .args(["run", "--state"])
        .arg(dir.path().join("state"))
        .arg(&src)
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("ffmpeg") && stderr.contains("no-ffmpeg-here"),
        "{stderr}"
    );

    let out = spool()
        .env("PATH", dir.path())
        .env_remove("SPOOL_FFMPEG")
        .args(["run", "--state"])
        .arg(dir.path().join("state"))
        .arg(&src)
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("ffmpeg was not found on PATH"), "{stderr}");

    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"x")?;
    let out = spool()
        .args(["run", "--state"])
        .arg(blocker.join("state"))
        .arg(&src)
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("a-file/state") && stderr.contains("Not a directory"),
        "{stderr}"
    );
    Ok(())
}
