//! Remote workers on a shared file system (`queue.shared`, `spool worker --shared`), and a
//! coordinator that encodes too (`queue.encode_here`): real Redis, real processes.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::api::Daemon;
use common::cluster::{
    check_outputs, coordinator_queue, make_distinct_clip, metric, submit, tasks, Redis, Worker,
};
use common::{wait_until, TestResult};

const FAST: &str = "profiles:\n\
    - {name: p144, codec: h264, height: 144, always_encode: true, preset: ultrafast}\n\
    - {name: p240, codec: h264, height: 240, always_encode: true, preset: ultrafast}\n";

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn shared_workers(
    dir: &Path,
    redis: &Redis,
    d: &Daemon,
    root: &Path,
) -> Result<[Worker; 2], Box<dyn std::error::Error>> {
    let url = d.url().ok_or("no URL")?;
    let root = root.display().to_string();
    Ok([
        Worker::start_with(dir, "w1", redis, &url, &["--shared", &root])?,
        Worker::start_with(dir, "w2", redis, &url, &["--shared", &root])?,
    ])
}

#[test]
fn workers_on_a_shared_file_system_move_nothing_over_http_and_check_what_they_find() -> TestResult {
    let dir = tempfile::tempdir()?;
    let nfs = dir.path().join("nfs");
    let redis = Redis::start(&dir.path().join("redis"))?;
    let shared = format!(", shared: \"{}\"", nfs.display());
    let d = coordinator_queue(dir.path(), &redis, FAST, &shared, &[])?;
    let source = dir.path().join("media/clip.mp4");
    make_distinct_clip(&source, 6)?;
    let ws = shared_workers(dir.path(), &redis, &d, &nfs)?;
    let id = submit(&d, dir.path(), "clip.mp4")?;
    let job = d.wait_final(&id, 120)?;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(check_outputs(&job, &source, 150)?, 2);
    // Inputs and results all went through the shared root.
    assert_eq!(metric(&d, "spool_blob_bytes_sent_total"), 0.0);
    assert_eq!(metric(&d, "spool_blob_bytes_received_total"), 0.0);
    assert_eq!(metric(&d, "spool_remote_intakes_total"), 6.0);
    let chunks = nfs.join("spool/chunks");
    assert!(files_in(&chunks).is_empty(), "{:?}", files_in(&chunks));
    assert!(files_in(&nfs.join("spool/results")).is_empty());
    drop(ws);

    // A second file, whose input goes bad on the shared file system before any worker
    // reads it (same size, one byte changed, in place: the coordinator placed a copy, so
    // the user's file must not change).
    let source = dir.path().join("media/clip.mp4");
    make_distinct_clip(&source, 5)?;
    let original_two = std::fs::read(&source)?;
    let id = submit(&d, dir.path(), "clip.mp4")?;
    wait_until(
        "the input in the shared root",
        Duration::from_secs(60),
        || files_in(&chunks).len() == 1,
    )?;
    let bad = chunks.join(&files_in(&chunks)[0]);
    let mut bytes = std::fs::read(&bad)?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&bad)?
        .write_all(&bytes)?;
    assert_eq!(
        std::fs::read(&source)?,
        original_two,
        "the original changed with the shared copy"
    );
    let _ws = shared_workers(dir.path(), &redis, &d, &nfs)?;
    let job = d.wait_final(&id, 120)?;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(check_outputs(&job, &source, 125)?, 2);
    // Refused by its hash, and downloaded instead: once per worker that took a task.
    let logs = ["w1", "w2"]
        .map(|w| std::fs::read_to_string(dir.path().join(format!("{w}.log"))).unwrap_or_default());
    let refusals: usize = logs
        .iter()
        .map(|l| l.matches("is not the task's").count())
        .sum();
    let sent = metric(&d, "spool_blob_bytes_sent_total");
    let size = bytes.len() as f64;
    assert!((1..=2).contains(&refusals), "{logs:?}");
    // A task taken back from a worker whose lease ran out (a loaded machine: leases here are
    // 3 s) may have started a download of its own, and a download that broke is asked for
    // again from where it stopped (what the coordinator had sent into the broken connection
    // counts twice); with neither, each refusal downloads once.
    let redelivered = metric(&d, "spool_remote_tasks_redelivered_total");
    let resumed = logs
        .iter()
        .map(|l| l.matches("the download broke").count())
        .sum::<usize>() as f64;
    if redelivered == 0.0 && resumed == 0.0 {
        assert_eq!(
            sent,
            size * refusals as f64,
            "each refusing worker downloaded it once; the workers' logs: {logs:?}"
        );
    } else {
        assert!(
            sent >= size * refusals as f64
                && sent <= size * (refusals as f64 + redelivered + resumed),
            "{sent} bytes sent for {refusals} refusals, {redelivered} redeliveries and \
             {resumed} resumed downloads"
        );
    }
    assert_eq!(metric(&d, "spool_blob_bytes_received_total"), 0.0);
    assert!(files_in(&chunks).is_empty());
    Ok(())
}

#[test]
fn a_coordinator_that_encodes_too_shares_the_tasks_with_its_workers() -> TestResult {
    let dir = tempfile::tempdir()?;
    let redis = Redis::start(&dir.path().join("redis"))?;
    let d = coordinator_queue(dir.path(), &redis, FAST, ", encode_here: 1", &[])?;
    let url = d.url().ok_or("no URL")?;
    let _w1 = Worker::start(dir.path(), "w1", &redis, &url)?;
    wait_until("both encoders alive", Duration::from_secs(30), || {
        metric(&d, "spool_workers_alive") >= 2.0
    })?;
    let source = dir.path().join("media/clip.mp4");
    make_distinct_clip(&source, 12)?;
    let id = submit(&d, dir.path(), "clip.mp4")?;
    let job = d.wait_final(&id, 120)?;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(check_outputs(&job, &source, 300)?, 2);
    let by: Vec<String> = tasks(&d, &id)
        .iter()
        .filter_map(|t| t["worker"].as_str().map(String::from))
        .collect();
    assert_eq!(by.len(), 12, "{by:?}");
    let here = by.iter().filter(|w| w.ends_with("-here")).count();
    assert!(
        (1..12).contains(&here),
        "the coordinator and w1 both encode: {by:?}"
    );
    // The coordinator's own encodes read its chunks in place: only w1's moved over HTTP.
    let sent = metric(&d, "spool_blob_bytes_sent_total");
    let received = metric(&d, "spool_blob_bytes_received_total");
    assert!(sent > 0.0 && received > 0.0, "w1 downloads and uploads");
    eprintln!("tasks encoded here: {here} of 12; HTTP down {sent} B, up {received} B");
    Ok(())
}
