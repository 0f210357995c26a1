//! Jobs over HTTP that outlive what goes wrong: uploads kept only under their own digest,
//! and jobs a crash interrupted, run again by the daemon after a restart.

mod common;

use std::time::Duration;

use common::api::*;
use common::*;
use serde_json::json;

#[test]
fn an_upload_is_kept_only_under_its_own_digest_and_runs_as_a_job() -> TestResult {
    use sha2::Digest;
    let dir = tempfile::tempdir()?;
    let d = Daemon::start(dir.path(), 1)?;
    let src = dir.path().join("elsewhere.mp4");
    clip(&src, 2)?;
    let bytes = std::fs::read(&src)?;
    let sha: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let url = format!("{}/v1/blobs/", d.url().unwrap_or_default());
    let put = |digest: &str, body: &[u8]| match ureq::put(&format!("{url}{digest}"))
        .set("authorization", &format!("Bearer {TOKEN}"))
        .send_bytes(body)
    {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    };
    let mut damaged = bytes.clone();
    damaged[bytes.len() / 2] ^= 1;
    let (code, reply) = put(&sha, &damaged);
    assert_eq!(code, 400, "{reply}");
    assert!(reply.contains("nothing kept"), "{reply}");
    assert!(!dir.path().join(format!("state/blobs/{sha}")).exists());
    // Not a blob route at all: 404 (or the connection closed while the body was still
    // being sent), and nothing written anywhere.
    let (code, _) = put("../../etc", &bytes);
    assert!(code == 404 || code == 0, "{code}");
    assert!(!dir.path().join("etc").exists() && !dir.path().join("state/etc").exists());
    let (code, _) = put(&"G".repeat(64), &bytes);
    assert!(
        code == 400 || code == 0,
        "refused before the body is read: {code}"
    );
    assert_eq!(put(&sha, &bytes).0, 201);
    assert_eq!(put(&sha, &bytes).0, 200, "stored before");
    let (code, job) = d
        .submit(&json!({"input": format!("blob:{sha}"), "name": "lecture.mp4", "workflow": "web"}));
    assert_eq!(code, 201, "{job}");
    let done = d.wait_final(job["id"].as_str().unwrap_or_default(), 60)?;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(dir.path().join("out/lecture/lecture.p144.mp4").is_file());
    let (code, reply) =
        d.submit(&json!({"input": format!("blob:{}", "0".repeat(64)), "workflow": "web"}));
    assert_eq!(code, 400, "{reply}");
    let (code, reply) =
        d.submit(&json!({"input": format!("blob:{sha}"), "name": "../x.mp4", "workflow": "web"}));
    assert_eq!(code, 400, "{reply}");
    Ok(())
}

#[test]
fn jobs_a_crash_interrupted_run_again_after_a_restart() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut d = Daemon::start(dir.path(), 1)?;
    let (first, second) = (
        dir.path().join("media/one.mp4"),
        dir.path().join("media/two.mp4"),
    );
    clip(&first, 6)?;
    clip(&second, 2)?;
    let (hook, got) = callback_server()?;
    let mut ids = Vec::new();
    for (src, p) in [(&first, 0), (&second, 50)] {
        let (code, v) = d.submit(&json!({"input": src, "workflow": "web", "priority": p,
            "params": {"label": "kept"}, "callback": hook}));
        assert_eq!(code, 201, "{v}");
        ids.push(v["id"].as_str().unwrap_or_default().to_string());
    }
    // Power cut: one job running or about to, one queued behind it.
    d.child.kill()?;
    d.child.wait()?;
    std::fs::remove_file(dir.path().join("state/daemon.json"))?;
    drop(d);
    let d = Daemon::start(dir.path(), 1)?;
    for id in &ids {
        let log = || std::fs::read_to_string(dir.path().join("watch.log")).unwrap_or_default();
        let job = d
            .wait_final(id, 30)
            .map_err(|e| format!("{e}: {}\n{}", d.job(id), log()))?;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    assert_eq!(d.job(&ids[1])["priority"], 50, "the priority is kept");
    assert!(dir.path().join("out/one/one.p144.mp4").is_file());
    assert!(dir.path().join("out/two/two.p144.mp4").is_file());
    wait_until("both succeeded callbacks", Duration::from_secs(20), || {
        got.lock().is_ok_and(|g| {
            ids.iter().all(|id| {
                g.iter().any(|(sig, b)| {
                    b.contains(id.as_str())
                        && b.contains("\"succeeded\"")
                        && *sig == expected_signature(b)
                })
            })
        })
    })?;
    Ok(())
}
