//! A network cut between one worker and everything else (Redis and the coordinator's API),
//! not a kill: the worker is alive, its connections stay open and silent. Real Redis, real
//! processes, a proxy that stops the bytes both ways.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{
    check_outputs, coordinator, leftovers, make_noisy_clip, metric, submit, tasks, Redis, Worker,
};
use common::proxy::Proxy;
use common::{ffmpeg_processes_mentioning, wait_until, TestResult};

/// About 8 s per 1 s chunk here: a cut lands mid-encode, and the lease (3 s) runs out first.
const SLOW: &str = "profiles:\n\
    - {name: p1080, codec: h264, height: 1080, always_encode: true, preset: veryslow}\n";

#[test]
#[ignore = "slow fault test (about a minute): cuts a worker's network mid-encode; CI runs it with --ignored"]
fn a_worker_cut_off_mid_encode_loses_its_task_stops_encoding_and_rejoins_when_the_link_heals(
) -> TestResult {
    let dir = tempfile::tempdir()?;
    let redis = Redis::start(&dir.path().join("redis"))?;
    let d = coordinator(dir.path(), &redis, SLOW)?;
    let api = d.url().ok_or("no URL")?;
    let api_port: u16 = api.rsplit(':').next().ok_or("no port")?.parse()?;
    let (to_redis, to_api) = (Proxy::start(redis.port)?, Proxy::start(api_port)?);
    let w1 = Worker::start_at(
        dir.path(),
        "w1",
        &format!("redis://127.0.0.1:{}", to_redis.port),
        &format!("http://127.0.0.1:{}", to_api.port),
        &[],
    )?;
    let _w2 = Worker::start(dir.path(), "w2", &redis, &api)?;
    let source = dir.path().join("media/clip.mp4");
    make_noisy_clip(&source, "1920x1080", 4)?;
    let id = submit(&d, dir.path(), "clip.mp4")?;
    let w1_work = w1.work.display().to_string();
    wait_until("w1's ffmpeg to run", Duration::from_secs(60), || {
        ffmpeg_processes_mentioning(&w1_work) >= 1
    })?;
    to_redis.cut(true);
    to_api.cut(true);
    let cut = Instant::now();
    // Still cut off, w1 learns by silence that its lease (3 s since its last renewal, made
    // within a second before the cut) is gone, and stops encoding.
    wait_until("w1's ffmpeg to stop", Duration::from_secs(6), || {
        ffmpeg_processes_mentioning(&w1_work) == 0
    })?;
    let stopped = cut.elapsed().as_secs_f64();
    let log = std::fs::read_to_string(dir.path().join("w1.log"))?;
    assert!(
        stopped >= 1.5,
        "w1 stopped after {stopped:.1} s: before its lease ran out: {log}"
    );
    assert!(
        log.contains("out of reach for longer than the lease"),
        "w1's encode ended, but not for its lease: {log}"
    );
    // The job finishes on w2 while w1 is still cut off.
    let job = d.wait_final(&id, 300)?;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(metric(&d, "spool_remote_tasks_redelivered_total") >= 1.0);
    assert!(check_outputs(&job, &source, 100)? >= 1);
    let published = common::find_files(&dir.path().join("published"), ".mp4");
    assert_eq!(published.len(), 1, "{published:?}");
    assert!(leftovers(&d.state).is_empty(), "{:?}", leftovers(&d.state));
    let moved_during_cut = to_redis.moved() + to_api.moved();

    // The link heals: w1's held requests go through, nothing of the old task is taken
    // twice, and w1 takes work again.
    to_redis.cut(false);
    to_api.cut(false);
    std::thread::sleep(Duration::from_secs(2));
    let second = dir.path().join("media/second.mp4");
    make_noisy_clip(&second, "1920x1080", 3)?;
    let id2 = submit(&d, dir.path(), "second.mp4")?;
    let job2 = d.wait_final(&id2, 300)?;
    assert_eq!(job2["status"], "succeeded", "{job2}");
    let by: Vec<String> = tasks(&d, &id2)
        .iter()
        .filter_map(|t| t["worker"].as_str().map(String::from))
        .collect();
    assert!(by.iter().any(|w| w == "w1"), "w1 did not come back: {by:?}");
    assert!(to_redis.moved() + to_api.moved() > moved_during_cut);
    assert_eq!(
        common::find_files(&dir.path().join("published"), ".mp4").len(),
        2
    );
    eprintln!(
        "w1 stopped its encode {stopped:.1} s into the cut; after healing it took {} of {} tasks",
        by.iter().filter(|w| *w == "w1").count(),
        by.len()
    );
    Ok(())
}
