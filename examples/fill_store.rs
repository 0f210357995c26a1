//! Fills a state directory with N finished jobs (2 tasks each), for bench/status.py.
//! `cargo run --release --example fill_store -- STATE N`

use spool::store::{
    JobId, JobRecord, JobStatus, JobStore, Maintenance, SledRepo, TaskRecord, TaskStatus, TaskStore,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let state = std::path::PathBuf::from(args.next().ok_or("usage: fill_store STATE N")?);
    let n: u64 = args.next().ok_or("usage: fill_store STATE N")?.parse()?;
    let repo = SledRepo::open(&state)?;
    let start = 0x0100_0000_0000u64;
    for i in 0..n {
        let id = JobId(format!("{:012x}{:04x}", start + i, i & 0xffff));
        let job = JobRecord {
            id: id.clone(),
            input: format!("/media/in/clip-{i}.mp4"),
            input_md5: format!("{i:032x}"),
            input_size: 1_000_000,
            workflow_name: "bench".into(),
            workflow_hash: "h".into(),
            out_dir: format!("/media/out/clip-{i}"),
            status: JobStatus::Running,
            created_ms: start + i,
            updated_ms: start + i,
            fallback_reason: None,
            error: None,
            stderr_tail: Vec::new(),
            manifest: None,
            chunks: 2,
            reused_chunks: 0,
            progress: 1.0,
            analysis: None,
            priority: 0,
        };
        repo.begin_job(&job)?;
        let tasks: Vec<TaskRecord> = (0..2)
            .map(|t| TaskRecord::pending(&id, t, Some(t), vec!["p144".into()]))
            .collect();
        repo.plan_job(&job, &tasks)?;
        for t in &tasks {
            let done = TaskRecord {
                status: TaskStatus::Done,
                ..t.clone()
            };
            repo.save_task(&done)?;
        }
        let status = if i % 10 == 0 {
            JobStatus::Failed
        } else {
            JobStatus::Succeeded
        };
        repo.save_job(&JobRecord { status, ..job })?;
    }
    repo.flush()?;
    println!("{n} jobs in {}", state.display());
    Ok(())
}
