use super::*;

fn job(id: &str, status: JobStatus) -> JobRecord {
    JobRecord {
        id: id.into(),
        input: "in.mp4".into(),
        input_md5: "m".into(),
        input_size: 1,
        workflow_name: "w".into(),
        workflow_hash: "h".into(),
        out_dir: "o".into(),
        status,
        created_ms: 1,
        updated_ms: 1,
        fallback_reason: None,
        error: None,
        stderr_tail: vec![],
        manifest: None,
        chunks: 2,
        reused_chunks: 0,
        progress: 0.0,
        analysis: None,
        priority: 0,
    }
}

fn task(job: &str, index: u32, status: TaskStatus) -> TaskRecord {
    TaskRecord {
        status,
        ..TaskRecord::pending(&job.into(), index, Some(index), vec!["a".into()])
    }
}

fn reopen(dir: &std::path::Path) -> Result<SledRepo, StoreError> {
    for _ in 0..50 {
        match SledRepo::open(dir) {
            Err(StoreError::Locked { .. }) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            other => return other,
        }
    }
    SledRepo::open(dir)
}

fn tmp() -> Result<tempfile::TempDir, StoreError> {
    tempfile::tempdir().map_err(|e| StoreError::Open {
        dir: "tmp".into(),
        reason: e.to_string(),
    })
}

#[test]
fn jobs_tasks_cache_survive_reopen_and_recovery() -> Result<(), StoreError> {
    let dir = tmp()?;
    {
        let repo = SledRepo::open(dir.path())?;
        repo.begin_job(&job("j1", JobStatus::Running))?;
        repo.plan_job(
            &job("j1", JobStatus::Running),
            &[
                task("j1", 0, TaskStatus::Running),
                task("j1", 1, TaskStatus::Pending),
            ],
        )?;
        let cache = CacheRecord {
            key: "k".into(),
            chunk_md5: "m".into(),
            chunk_sha256: "s".into(),
            chunk_size: 1,
            path: "p".into(),
            bytes: 1,
            frames: 1,
            created_ms: 1,
            last_used_ms: 0,
            sha256: String::new(),
        };
        repo.finish_task(&task("j1", 1, TaskStatus::Done), &[cache])?;
        // A second open of the same directory is refused while the first holds it.
        let second = SledRepo::open(dir.path()).err().map(|e| e.to_string());
        assert!(
            second.as_deref().is_some_and(|e| e.contains("in use")),
            "{second:?}"
        );
        repo.flush()?;
    }
    // sled's flusher thread lets go of the lock a moment after the drop.
    let repo = reopen(dir.path())?;
    assert_eq!(repo.recover()?, 1);
    let j = repo.get_job(&"j1".into())?.map(|j| j.status);
    assert_eq!(j, Some(JobStatus::Interrupted));
    let statuses: Vec<_> = repo
        .tasks_of(&"j1".into())?
        .iter()
        .map(|t| t.status)
        .collect();
    assert_eq!(statuses, [TaskStatus::Pending, TaskStatus::Done]);
    assert!(repo.cache_get("k")?.is_some());
    // A resumed job gets a new plan, replacing the old tasks atomically.
    repo.begin_job(&job("j1", JobStatus::Running))?;
    repo.plan_job(
        &job("j1", JobStatus::Running),
        &[task("j1", 0, TaskStatus::Pending)],
    )?;
    assert_eq!(repo.tasks_of(&"j1".into())?.len(), 1);
    Ok(())
}

#[test]
fn a_finished_task_never_runs_again_and_a_succeeded_job_is_final() -> Result<(), StoreError> {
    let dir = tmp()?;
    let repo = SledRepo::open(dir.path())?;
    repo.begin_job(&job("j", JobStatus::Running))?;
    repo.plan_job(
        &job("j", JobStatus::Running),
        &[task("j", 0, TaskStatus::Pending)],
    )?;
    repo.save_task(&task("j", 0, TaskStatus::Running))?;
    repo.finish_task(&task("j", 0, TaskStatus::Done), &[])?;
    // A progress write that lands after the finish is refused, not applied.
    let late = repo.save_task(&task("j", 0, TaskStatus::Running));
    assert!(
        matches!(late, Err(StoreError::IllegalTransition { .. })),
        "{late:?}"
    );
    assert_eq!(
        repo.tasks_of(&"j".into())?[0].status,
        TaskStatus::Done,
        "the finish stands"
    );
    repo.save_job(&job("j", JobStatus::Succeeded))?;
    for next in [JobStatus::Running, JobStatus::Failed, JobStatus::Cancelled] {
        let moved = repo.save_job(&job("j", next));
        assert!(
            matches!(moved, Err(StoreError::IllegalTransition { .. })),
            "{next:?}: {moved:?}"
        );
        assert!(repo.begin_job(&job("j", next)).is_err());
    }
    // Saving a job that was never begun is an error, not a silent insert.
    assert!(matches!(
        repo.save_job(&job("nope", JobStatus::Failed)),
        Err(StoreError::Missing { .. })
    ));
    Ok(())
}

#[test]
fn jobs_are_found_by_input_and_output_dir_through_the_index() -> Result<(), StoreError> {
    let dir = tmp()?;
    let repo = SledRepo::open(dir.path())?;
    for (id, md5, out) in [
        ("a", "m1", "o1"),
        ("b", "m1", "o2"),
        ("c", "m2", "o1"),
        ("d", "m1", "o1"),
    ] {
        let mut j = job(id, JobStatus::Running);
        j.input_md5 = md5.into();
        j.out_dir = out.into();
        repo.begin_job(&j)?;
    }
    let mut found: Vec<String> = repo
        .jobs_for_input("m1", "o1")?
        .into_iter()
        .map(|j| j.id.0)
        .collect();
    found.sort();
    assert_eq!(found, ["a", "d"]);
    // An output dir that is a prefix of another does not match it.
    assert!(repo.jobs_for_input("m1", "o")?.is_empty());
    Ok(())
}

#[test]
fn transition_tables() {
    use JobStatus::*;
    assert!(Running.may_become(Succeeded));
    assert!(Interrupted.may_become(Running));
    assert!(Failed.may_become(Running));
    assert!(!Succeeded.may_become(Running));
    assert!(!Failed.may_become(Succeeded));
    use TaskStatus as T;
    assert!(T::Pending.may_become(T::Done));
    assert!(T::Running.may_become(T::Pending));
    assert!(!T::Done.may_become(T::Running));
    assert!(!T::Cancelled.may_become(T::Pending));
}

#[test]
fn recent_jobs_page_newest_first_with_a_cursor_and_a_filter() -> Result<(), StoreError> {
    let dir = tmp()?;
    let repo = SledRepo::open(dir.path())?;
    for i in 0..10u32 {
        let status = if i % 3 == 0 {
            JobStatus::Failed
        } else {
            JobStatus::Running
        };
        repo.begin_job(&job(&format!("{i:016x}"), JobStatus::Running))?;
        repo.save_job(&job(&format!("{i:016x}"), status))?;
    }
    let ids = |jobs: Vec<JobRecord>| -> Vec<String> { jobs.into_iter().map(|j| j.id.0).collect() };
    let first = repo.recent_jobs(None, 4, None)?;
    assert_eq!(
        ids(first.clone()),
        [
            "0000000000000009",
            "0000000000000008",
            "0000000000000007",
            "0000000000000006"
        ]
    );
    let next = repo.recent_jobs(first.last().map(|j| &j.id), 4, None)?;
    assert_eq!(
        ids(next),
        [
            "0000000000000005",
            "0000000000000004",
            "0000000000000003",
            "0000000000000002"
        ]
    );
    let failed = repo.recent_jobs(None, 10, Some(JobStatus::Failed))?;
    assert_eq!(
        ids(failed),
        [
            "0000000000000009",
            "0000000000000006",
            "0000000000000003",
            "0000000000000000"
        ]
    );
    Ok(())
}
