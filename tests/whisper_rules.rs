//! Transcription follows the engine's rules, through a real daemon: Whisper runs in a child
//! process (`spool __whisper`) that the daemon's schedule stops as it stops its ffmpegs (a
//! closing window pauses it at once, an opening one resumes it and it finishes), and a job
//! cancelled while Whisper works is cancelled within two seconds with its Whisper process gone
//! within one, in the middle of a window; a daemon killed (SIGKILL) while Whisper works leaves
//! no Whisper behind; meanwhile the daemon's live stream shows its progress as a
//! `transcribe` task.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::api::{Daemon, TOKEN};
use common::sources::{say, whisper_base_model};
use common::{ffmpeg, find_files, wait_until, TestResult};
use serde_json::Value;

const TEXT: [&str; 3] = [
    "The river runs past the old mill and under the stone bridge, where children watch the boats \
     go by in the long summer evenings, and the baker sells bread until the light goes down.",
    "In the library on the hill there are books about ships, about mountains and about the stars, \
     and every morning the keeper opens the windows so that the wind can turn the pages.",
    "When the winter comes the town grows quiet, the market closes early, and people walk home \
     through the snow with lanterns, talking about the year that has passed and the one to come.",
];

/// About two minutes of speech under a tiny picture.
fn long_talk(dir: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let mut parts = Vec::new();
    for round in 0..3 {
        for (i, text) in TEXT.iter().enumerate() {
            let wav = dir.join(format!("p{round}{i}.wav"));
            say(text, &wav)?;
            parts.push(wav);
        }
    }
    let list = dir.join("parts.txt");
    let lines: Vec<String> = parts
        .iter()
        .map(|p| format!("file '{}'", p.display()))
        .collect();
    std::fs::write(&list, lines.join("\n"))?;
    let talk = dir.join("talk.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=128x72:r=5:d=200",
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        list.to_str().unwrap_or_default(),
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-shortest",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        talk.to_str().unwrap_or_default(),
    ])?;
    Ok(talk)
}

fn start(dir: &Path, clock: &Path) -> Result<Daemon, Box<dyn std::error::Error>> {
    let model = whisper_base_model()?;
    std::fs::create_dir_all(dir.join("in"))?;
    std::fs::write(
        dir.join("wf.yaml"),
        format!(
            "version: 1\nname: talks\nchunking: {{enabled: false}}\n\
             profiles:\n- {{name: p72, codec: h264, height: 144, always_encode: true, preset: ultrafast}}\n\
             steps:\n- transcribe: {{model: {}, beam_size: 5, threads: 2}}\n\
             watch: {{folders: [in], output: out, settle_seconds: 1, rescan_seconds: 2, max_attempts: 1}}\n\
             schedule:\n  windows: [{{from: \"08:00\", to: \"20:00\"}}]\n  outside: pause\n",
            model.display()
        ),
    )?;
    std::fs::write(
        dir.join("spool.yaml"),
        format!("state: state\nlisten: 127.0.0.1:0\ntoken: {TOKEN}\nworkflows: [wf.yaml]\nconcurrency: 2\n"),
    )?;
    Daemon::spawn_with(dir, &[("SPOOL_CLOCK_FILE", clock.display().to_string())])
}

/// Seconds of CPU the process has used (user + system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised name, from the state on: utime and stime are the 12th
    // and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let ticks = field(11) + field(12);
    ticks / 100.0
}

/// The daemon's Whisper children: `spool __whisper` processes reading audio under its state.
fn whisper_children(state: &Path) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let state = state.display().to_string();
    procs
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (text.contains(" __whisper ") && text.contains(&state)).then_some(pid)
        })
        .collect()
}

/// CPU seconds of the daemon and its Whisper children (a child that ended drops out).
fn whisper_cpu(d: &Daemon) -> f64 {
    cpu_seconds(d.child.id())
        + whisper_children(&d.state)
            .into_iter()
            .map(cpu_seconds)
            .sum::<f64>()
}

/// A process's niceness (field 19 of its stat).
fn niceness(pid: u32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(16)?
        .parse()
        .ok()
}

/// A process's state letter (`R`, `S`, `T` for stopped…).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Whisper is at work: its 16 kHz audio is written, no ffmpeg is still writing it, and its
/// child runs.
fn whispering(state: &Path) -> bool {
    !find_files(&state.join("work"), "speech.f32").is_empty()
        && common::ffmpeg_processes_mentioning("speech.f32") == 0
        && !whisper_children(state).is_empty()
}

/// Waits until Whisper decodes at full speed (the model loaded, a window under way).
fn busy_whispering(d: &Daemon) -> Result<(), String> {
    wait_until("Whisper at work", Duration::from_secs(90), || {
        whispering(&d.state)
    })?;
    wait_until("Whisper using the CPU", Duration::from_secs(30), || {
        let before = whisper_cpu(d);
        std::thread::sleep(Duration::from_secs(1));
        whisper_cpu(d) - before > 0.5
    })
}

/// The two tests each run Whisper on both cores: one at a time, or neither gets the CPU its
/// measurements expect.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The `transcribe` task's progress fractions the live stream (`GET /v1/events`) shows, read
/// until one lies strictly between 0 and 1 or `within` passes.
fn transcribe_progress(
    d: &Daemon,
    within: Duration,
) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    use std::io::BufRead;
    let url = format!("{}/v1/events", d.url().unwrap_or_default());
    let stream = ureq::get(&url)
        .set("authorization", &format!("Bearer {TOKEN}"))
        .call()?
        .into_reader();
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    for line in std::io::BufReader::new(stream).lines() {
        let line = line?;
        if let Some(data) = line.strip_prefix("data:") {
            let v: Value = serde_json::from_str(data.trim()).unwrap_or(Value::Null);
            for job in v["running"].as_array().into_iter().flatten() {
                if let Some(f) = job["tasks"]["transcribe"]["fraction"].as_f64() {
                    seen.push(f);
                }
            }
        }
        if seen.iter().any(|f| *f > 0.0 && *f < 1.0) || Instant::now() > deadline {
            break;
        }
    }
    Ok(seen)
}

fn the_job(d: &Daemon) -> Value {
    let (_, text) = d.call("GET", "/v1/jobs", None);
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    v["jobs"]
        .as_array()
        .and_then(|j| j.first().cloned())
        .unwrap_or(Value::Null)
}

/// A daemon (its clock inside the window) transcribing the long talk, Whisper at full speed.
fn whispering_daemon() -> Result<(tempfile::TempDir, PathBuf, Daemon), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let clock = dir.path().join("clock");
    std::fs::write(&clock, "mon 12:00")?;
    let talk = long_talk(dir.path())?;
    let d = start(dir.path(), &clock)?;
    std::fs::rename(&talk, dir.path().join("in/talk.mp4"))?;
    busy_whispering(&d)?;
    Ok((dir, clock, d))
}

#[test]
fn a_closing_window_pauses_whisper_and_an_opening_one_resumes_it() -> TestResult {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (dir, clock, d) = whispering_daemon()?;

    // Whisper runs below the daemon's priority, as its ffmpegs do (tests/nice.rs).
    let children = whisper_children(&d.state);
    let own = niceness(d.child.id()).unwrap_or(0);
    for p in &children {
        assert_eq!(niceness(*p), Some((own + 10).min(19)), "Whisper's niceness");
    }
    std::fs::write(&clock, "mon 21:00")?;
    // The schedule looks every second and stops the child where it is, mid-window.
    wait_until("Whisper stopped", Duration::from_secs(3), || {
        children.iter().all(|p| process_state(*p) == Some('T'))
    })?;
    let paused = whisper_cpu(&d);
    std::thread::sleep(Duration::from_secs(4));
    let used = whisper_cpu(&d) - paused;
    assert!(used < 0.4, "{used:.2} s of CPU in 4 s while paused");
    assert!(whispering(&d.state), "still transcribing, not finished");
    assert_ne!(the_job(&d)["status"], "succeeded");

    std::fs::write(&clock, "mon 12:00")?;
    let id = the_job(&d)["id"].as_str().unwrap_or_default().to_string();
    let done = d.wait_final(&id, 240)?;
    assert_eq!(done["status"], "succeeded", "{done}");
    let manifest = common::read_json(&dir.path().join("out/talk/manifest.json"))?;
    let text = manifest["steps"]["transcribe"]["text"]
        .as_str()
        .unwrap_or("")
        .to_lowercase();
    for word in ["river", "library", "winter"] {
        assert!(text.contains(word), "{word} missing: {text}");
    }
    Ok(())
}

#[test]
fn a_job_cancelled_during_transcription_is_cancelled_at_once_and_whisper_stops() -> TestResult {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (_dir, _clock, d) = whispering_daemon()?;
    let shown = transcribe_progress(&d, Duration::from_secs(30))?;
    assert!(
        shown.iter().any(|f| *f > 0.0 && *f < 1.0),
        "no transcription progress in the live stream: {shown:?}"
    );
    let id = the_job(&d)["id"].as_str().unwrap_or_default().to_string();
    assert!(!whisper_children(&d.state).is_empty());
    let asked = Instant::now();
    let (code, body) = d.call("POST", &format!("/v1/jobs/{id}/cancel"), None);
    assert!(code < 300, "{code} {body}");
    // Killed mid-window: CTranslate2 is not asked to finish what it decodes.
    while !whisper_children(&d.state).is_empty() {
        let waited = asked.elapsed().as_secs_f64();
        assert!(
            waited < 1.0,
            "Whisper still runs {waited:.2} s after the cancel"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let done = d.wait_final(&id, 30)?;
    let took = asked.elapsed().as_secs_f64();
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(took < 2.0, "cancelled after {took:.2} s");
    let before = whisper_cpu(&d);
    std::thread::sleep(Duration::from_secs(1));
    let used = whisper_cpu(&d) - before;
    assert!(
        used < 0.3,
        "{used:.2} s of CPU in the second after the cancel"
    );
    assert_eq!(the_job(&d)["status"], "cancelled");
    Ok(())
}

#[test]
fn a_daemon_killed_while_whisper_works_leaves_no_whisper_behind() -> TestResult {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (_dir, _clock, mut d) = whispering_daemon()?;
    let children = whisper_children(&d.state);
    assert!(!children.is_empty());
    d.child.kill()?;
    let _ = d.child.wait();
    let killed = Instant::now();
    wait_until(
        "Whisper to die with the daemon",
        Duration::from_secs(2),
        || {
            children
                .iter()
                .all(|p| !matches!(process_state(*p), Some(s) if s != 'Z'))
        },
    )?;
    assert!(killed.elapsed() < Duration::from_secs(2));
    Ok(())
}
