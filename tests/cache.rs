//! A cache that does not fill the disk: a size limit kept by least-recently-used eviction
//! after each job, never removing what a running job still needs; `spool cache stats`,
//! `gc` and `verify` on a real state directory.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

fn workflow(dir: &Path) -> Result<PathBuf, std::io::Error> {
    write_workflow(
        dir,
        "cached",
        "profiles:\n- {name: p144, codec: h264, height: 144, always_encode: true, preset: ultrafast}\n",
    )
}

/// `spool run --json` of `inputs` in one scheduler; every job must succeed.
fn run(
    dir: &Path,
    wf: &Path,
    inputs: &[&Path],
    limit: Option<&str>,
) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    let mut cmd = spool();
    cmd.args(["run", "--json", "--workflow"])
        .arg(wf)
        .arg("--out")
        .arg(dir.join("out"))
        .arg("--state")
        .arg(dir.join("state"))
        .arg("--force");
    if let Some(l) = limit {
        cmd.args(["--cache-max-size", l]);
    }
    let out = outcomes(&cmd.args(inputs).assert().success().get_output().stdout);
    for o in &out {
        assert_eq!(o["status"], "succeeded", "{o}");
    }
    Ok(out)
}

fn cache(dir: &Path, args: &[&str]) -> (i32, Value) {
    let out = spool()
        .arg("cache")
        .args(args)
        .args(["--json", "--state"])
        .arg(dir.join("state"))
        .output();
    match out {
        Ok(o) => (
            o.status.code().unwrap_or(-1),
            serde_json::from_slice(&o.stdout).unwrap_or(Value::Null),
        ),
        Err(e) => (-1, Value::String(e.to_string())),
    }
}

/// Every file the cache holds: encoded chunks and joins (.mp4) and audio encodes (.m4a).
fn cached_files(dir: &Path) -> Vec<PathBuf> {
    find_files(&dir.join("state/cache"), ".m")
        .into_iter()
        .filter(|p| p.is_file())
        .collect()
}

#[test]
fn eviction_keeps_the_limit_and_spares_a_running_jobs_chunks() -> TestResult {
    let dir = tempfile::tempdir()?;
    let wf = workflow(dir.path())?;
    let (a, short, long) = (
        dir.path().join("a.mp4"),
        dir.path().join("short.mp4"),
        dir.path().join("long.mp4"),
    );
    make_clip(&a, "256x144", 25, 3, Audio::Bursts)?;
    make_clip(&short, "320x180", 25, 1, Audio::Bursts)?;
    make_clip(&long, "352x198", 25, 8, Audio::Bursts)?;
    run(dir.path(), &wf, &[&a], None)?;
    let (_, before) = cache(dir.path(), &["stats"]);
    assert_eq!(
        before["entries"], 5,
        "three chunks, the audio and the join: {before}"
    );
    // A 1-byte cache: when the short job ends, the long one is still encoding. Its chunks
    // were made after it started, so they stay, and its join finds them; a's go.
    let both = run(dir.path(), &wf, &[&short, &long], Some("1"))?;
    assert_eq!(both.len(), 2);
    let (_, after) = cache(dir.path(), &["stats"]);
    assert_eq!(
        after["entries"], 0,
        "nothing running at the end: all over the limit go"
    );
    assert!(cached_files(dir.path()).is_empty());
    // With room again, a's chunks are encoded anew (they were evicted), then reused.
    let again = run(dir.path(), &wf, &[&a], Some("1GiB"))?;
    assert_eq!(again[0]["reused_chunks"], 0, "{}", again[0]);
    // Through another workflow version (its name only), so chunks are reused, not outputs.
    let renamed = write_workflow(
        dir.path(),
        "cached-again",
        "profiles:\n- {name: p144, codec: h264, height: 144, always_encode: true, preset: ultrafast}\n",
    )?;
    let third = spool()
        .args(["run", "--json", "--workflow"])
        .arg(&renamed)
        .arg("--out")
        .arg(dir.path().join("out2"))
        .arg("--state")
        .arg(dir.path().join("state"))
        .arg(&a)
        .assert()
        .success();
    let third = outcomes(&third.get_output().stdout);
    assert_eq!(third[0]["reused_chunks"], 3, "{}", third[0]);
    Ok(())
}

#[test]
fn verify_drops_damaged_entries_and_gc_evicts_the_least_recently_used() -> TestResult {
    let dir = tempfile::tempdir()?;
    let wf = workflow(dir.path())?;
    let (a, b) = (dir.path().join("a.mp4"), dir.path().join("b.mp4"));
    make_clip(&a, "256x144", 25, 2, Audio::Bursts)?;
    make_clip(&b, "320x180", 25, 2, Audio::Bursts)?;
    run(dir.path(), &wf, &[&b], None)?;
    run(dir.path(), &wf, &[&a], None)?;
    assert_eq!(cache(dir.path(), &["verify"]).0, 0);
    // Used last: a (b was made before). gc to a's size keeps a, evicts b.
    let (_, stats) = cache(dir.path(), &["stats"]);
    assert_eq!(
        stats["entries"], 8,
        "two chunks, the audio and the join each: {stats}"
    );
    let a_bytes: u64 = cached_files(dir.path())
        .iter()
        .filter(|p| {
            let key = p.file_stem().map(|s| s.to_string_lossy().into_owned());
            key.is_some_and(|k| k.starts_with(&md5_of(&dir.path().join("a.mp4"))))
        })
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    assert!(a_bytes > 0);
    let (code, gc) = cache(dir.path(), &["gc", "--max-size", &a_bytes.to_string()]);
    assert_eq!((code, &gc["removed"]), (0, &Value::from(4)), "{gc}");
    assert_eq!(gc["left"]["bytes"], a_bytes);
    // Damage what is left: one byte flipped in one file, the others cut short.
    let files = cached_files(dir.path());
    assert_eq!(files.len(), 4, "a's two chunks, its audio and its join");
    let mut bytes = std::fs::read(&files[0])?;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&files[0], &bytes)?;
    for f in &files[1..] {
        let cut = std::fs::read(f)?;
        std::fs::write(f, &cut[..cut.len() / 2])?;
    }
    let (code, report) = cache(dir.path(), &["verify"]);
    assert_eq!(code, 1, "{report}");
    let reasons = report["dropped"].to_string();
    assert!(
        reasons.contains("SHA-256") && reasons.contains("bytes, recorded"),
        "{reasons}"
    );
    assert!(cached_files(dir.path()).is_empty());
    assert_eq!(
        cache(dir.path(), &["verify"]).0,
        0,
        "a second check finds nothing bad"
    );
    // A job after that encodes again and succeeds: nothing damaged is reused.
    let again = run(dir.path(), &wf, &[&a], None)?;
    assert_eq!(again[0]["reused_chunks"], 0);
    Ok(())
}

fn md5_of(path: &Path) -> String {
    use md5::Digest;
    let bytes = std::fs::read(path).unwrap_or_default();
    md5::Md5::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
