//! Renders engine events: progress bars on a terminal, plain log lines elsewhere.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::sync::mpsc::UnboundedReceiver;

use spool::engine::Event;
use spool::store::JobId;

/// What `render` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    Bars,
    Lines,
    None,
}

pub async fn render(mut events: UnboundedReceiver<Event>, display: Display) {
    match display {
        Display::Bars => render_bars(&mut events).await,
        Display::Lines => render_lines(&mut events).await,
        Display::None => while events.recv().await.is_some() {},
    }
}

/// One line per job for the end of a run: how it ended, what it made, what it took.
pub fn summary(o: &spool::engine::JobOutcome) -> String {
    let name = std::path::Path::new(&o.input)
        .file_name()
        .map_or(o.input.clone(), |n| n.to_string_lossy().into_owned());
    let made = o
        .manifest
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice::<spool::engine::manifest::Manifest>(&b).ok())
        .map(|m| {
            let n = m.outputs.len();
            format!(
                "{n} output{}, {} from {}, ",
                if n == 1 { "" } else { "s" },
                mib(m.bytes_out()),
                mib(std::fs::metadata(&o.input).map_or(0, |md| md.len()))
            )
        })
        .unwrap_or_default();
    let chunks = match o.chunks {
        0 => String::new(),
        n => format!(", {}/{n} chunks reused", o.reused_chunks),
    };
    let reason = o
        .reason
        .as_ref()
        .map_or(String::new(), |r| format!(": {r}"));
    format!(
        "{:<11} {name}: {made}{:.1} s{chunks}{reason}",
        o.status.as_str(),
        o.elapsed_s
    )
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

async fn render_lines(events: &mut UnboundedReceiver<Event>) {
    let mut last_logged: HashMap<JobId, (Instant, f64)> = HashMap::new();
    while let Some(e) = events.recv().await {
        match e {
            Event::JobStarted {
                job,
                input,
                tasks,
                rungs,
            } => {
                tracing::info!(%job, %input, tasks, rungs = %rungs.join(","), "job started")
            }
            Event::Note { job, message } => tracing::info!(%job, "{message}"),
            Event::TaskFinished { job, task, reused } => {
                tracing::info!(%job, %task, reused, "task done")
            }
            Event::JobProgress { job, fraction } => {
                let entry = last_logged
                    .entry(job.clone())
                    .or_insert((Instant::now(), 0.0));
                if entry.0.elapsed() >= Duration::from_secs(5) && fraction > entry.1 {
                    *entry = (Instant::now(), fraction);
                    tracing::info!(%job, "{:.0}% done", fraction * 100.0);
                }
            }
            Event::TaskProgress { .. } => {}
            Event::JobFinished(o) => match &o.reason {
                None => {
                    tracing::info!(job = %shown(&o.id), input = %o.input, status = o.status.as_str(),
                    chunks = o.chunks, reused = o.reused_chunks, "job finished in {:.1}s", o.elapsed_s)
                }
                Some(r) => {
                    tracing::warn!(job = %shown(&o.id), input = %o.input, status = o.status.as_str(), "job ended: {r}")
                }
            },
        }
    }
}

async fn render_bars(events: &mut UnboundedReceiver<Event>) {
    let multi = MultiProgress::new();
    let job_style = ProgressStyle::with_template(
        "{prefix:.bold} [{bar:30.cyan/blue}] {percent:>3}% {elapsed_precise} ETA {eta} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    let task_style =
        ProgressStyle::with_template("  {prefix} [{bar:20}] {percent:>3}% ETA {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    let mut jobs: HashMap<JobId, ProgressBar> = HashMap::new();
    let mut tasks: HashMap<(JobId, String), ProgressBar> = HashMap::new();
    while let Some(e) = events.recv().await {
        match e {
            Event::JobStarted { job, input, .. } => {
                let bar = multi.add(ProgressBar::new(1000).with_style(job_style.clone()));
                bar.set_prefix(short_name(&input));
                jobs.insert(job, bar);
            }
            Event::Note { job, message } => {
                let _ = multi.println(format!("{job}: {message}"));
            }
            Event::JobProgress { job, fraction } => {
                if let Some(b) = jobs.get(&job) {
                    b.set_position((fraction * 1000.0) as u64);
                }
            }
            Event::TaskProgress {
                job,
                task,
                fraction,
                fps,
                speed,
            } => {
                let bar = tasks.entry((job, task.clone())).or_insert_with(|| {
                    let b = multi.add(ProgressBar::new(1000).with_style(task_style.clone()));
                    b.set_prefix(task);
                    b
                });
                bar.set_position((fraction * 1000.0) as u64);
                bar.set_message(format!(
                    "{} fps, {}x",
                    fps.map_or("-".into(), |f| format!("{f:.0}")),
                    speed.map_or("-".into(), |s| format!("{s:.2}"))
                ));
            }
            Event::TaskFinished { job, task, .. } => {
                if let Some(b) = tasks.remove(&(job, task)) {
                    b.finish_and_clear();
                }
            }
            Event::JobFinished(o) => {
                if let Some(b) = o.id.as_ref().and_then(|id| jobs.remove(id)) {
                    b.finish_with_message(o.status.as_str().to_string());
                }
                let line = match &o.reason {
                    None => format!(
                        "{}: {} in {:.1}s ({} chunks, {} reused)",
                        o.input,
                        o.status.as_str(),
                        o.elapsed_s,
                        o.chunks,
                        o.reused_chunks
                    ),
                    Some(r) => format!("{}: {}: {r}", o.input, o.status.as_str()),
                };
                let _ = multi.println(line);
            }
        }
    }
}

/// A job id for log lines: the id, or "-" for a job that never got one.
fn shown(id: &Option<JobId>) -> &str {
    id.as_ref().map_or("-", JobId::as_str)
}

fn short_name(input: &str) -> String {
    let name = std::path::Path::new(input)
        .file_name()
        .map_or(input.to_string(), |n| n.to_string_lossy().into_owned());
    if name.chars().count() > 28 {
        format!("{}…", name.chars().take(27).collect::<String>())
    } else {
        name
    }
}
