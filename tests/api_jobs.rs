//! Platforms submit work over HTTP: `POST /v1/jobs` on a real daemon. Jobs run and call
//! back signed; a repeated idempotency key gives the same job; parameters reach Lua; paths
//! outside the configured roots (directly, through `..`, through a symlink) and malformed
//! requests are refused with a reason and leave nothing behind; priorities decide which
//! queued job runs next; the OpenAPI document names exactly the routes that exist.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::api::*;
use common::*;
use serde_json::{json, Value};

#[test]
fn a_platform_submits_a_job_and_gets_signed_callbacks() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = Daemon::start(dir.path(), 2)?;
    let src = dir.path().join("media/upload 1.mp4");
    clip(&src, 2)?;
    let (hook, got) = callback_server()?;
    let request = json!({
        "input": src, "workflow": "web", "output": dir.path().join("published"),
        "callback": hook, "priority": 5, "idempotency_key": "upload-1",
    });
    let (code, first) = d.submit(&request);
    assert_eq!(code, 201, "{first}");
    let id = first["id"].as_str().unwrap_or_default().to_string();
    let (code, again) = d.submit(&request);
    assert_eq!(
        (code, &again["id"]),
        (200, &first["id"]),
        "a retried request is the same job"
    );
    let job = d.wait_final(&id, 60)?;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(dir
        .path()
        .join("published/upload 1/upload 1.p144.mp4")
        .is_file());
    wait_until("the succeeded callback", Duration::from_secs(20), || {
        got.lock()
            .is_ok_and(|g| g.iter().any(|(_, b)| b.contains("\"succeeded\"")))
    })?;
    let received = got.lock().map(|g| g.clone()).unwrap_or_default();
    for (signature, body) in &received {
        assert_eq!(
            signature,
            &expected_signature(body),
            "every callback is signed"
        );
        let event: Value = serde_json::from_str(body)?;
        assert_eq!(event["job"], first["id"], "{body}");
    }
    let done = received
        .iter()
        .find(|(_, b)| b.contains("\"succeeded\""))
        .map(|(_, b)| serde_json::from_str::<Value>(b))
        .transpose()?
        .unwrap_or_default();
    assert!(done["manifest_json"]["outputs"].is_array(), "{done}");
    // A file that is not media fails before its job starts: its record and callback say why.
    let notes = dir.path().join("media/notes.mp4");
    std::fs::write(&notes, "not a video at all")?;
    let (code, bad) = d.submit(&json!({"input": notes, "workflow": "web", "callback": hook}));
    assert_eq!(code, 201, "{bad}");
    let failed = d.wait_final(bad["id"].as_str().unwrap_or_default(), 30)?;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{failed}"
    );
    wait_until("the failed callback", Duration::from_secs(20), || {
        got.lock().is_ok_and(|g| {
            g.iter().any(|(sig, b)| {
                b.contains("\"failed\"")
                    && b.contains(bad["id"].as_str().unwrap_or("-"))
                    && *sig == expected_signature(b)
            })
        })
    })?;
    // The example client in contrib/ does the same round trip and prints the manifest.
    let third = dir.path().join("media/third.mp4");
    clip(&third, 1)?;
    let client = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/spool_client.py"))
        .args([
            "--api",
            &d.url().unwrap_or_default(),
            "--secret",
            SECRET,
            "--token",
            TOKEN,
            "--workflow",
            "web",
        ])
        .arg(&third)
        .args(["--timeout", "60"])
        .output()?;
    let printed = String::from_utf8_lossy(&client.stdout);
    assert!(
        client.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&client.stderr)
    );
    let manifest: Value = serde_json::from_str(&printed)?;
    assert!(
        manifest["outputs"]
            .as_array()
            .is_some_and(|o| !o.is_empty()),
        "{manifest}"
    );
    // A tampered body no longer matches its signature.
    assert_ne!(
        expected_signature(&received[0].1.replace('1', "2")),
        received[0].0
    );
    // Parameters reach the hooks as spool.params.
    let other = dir.path().join("media/other.mp4");
    clip(&other, 3)?;
    let (code, skipped) = d.submit(&json!({
        "input": other, "workflow": "web", "params": {"skip": true, "label": "the platform"},
    }));
    assert_eq!(code, 201, "{skipped}");
    let job = d.wait_final(skipped["id"].as_str().unwrap_or_default(), 60)?;
    assert_eq!(job["status"], "skipped", "{job}");
    assert!(
        job["error"].as_str().unwrap_or("").contains("the platform"),
        "{job}"
    );
    Ok(())
}

#[test]
fn hostile_or_malformed_submissions_are_refused_and_leave_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = Daemon::start(dir.path(), 1)?;
    let inside = dir.path().join("media/ok.mp4");
    clip(&inside, 1)?;
    let outside = dir.path().join("secret.mp4");
    clip(&outside, 1)?;
    std::os::unix::fs::symlink(&outside, dir.path().join("media/link.mp4"))?;
    std::os::unix::fs::symlink(dir.path(), dir.path().join("media/up"))?;
    let media = dir.path().join("media");
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"input": outside, "workflow": "web"}), 403, "outside"),
        (
            json!({"input": media.join("../secret.mp4"), "workflow": "web"}),
            403,
            "outside",
        ),
        (
            json!({"input": media.join("link.mp4"), "workflow": "web"}),
            403,
            "outside",
        ),
        (
            json!({"input": media.join("up/secret.mp4"), "workflow": "web"}),
            403,
            "outside",
        ),
        (
            json!({"input": "/etc/passwd", "workflow": "web"}),
            403,
            "outside",
        ),
        (
            json!({"input": "/no/such/file.mp4", "workflow": "web"}),
            403,
            "outside",
        ),
        (
            json!({"input": media.join("missing.mp4"), "workflow": "web"}),
            400,
            "missing.mp4",
        ),
        (
            json!({"input": "media/ok.mp4", "workflow": "web"}),
            400,
            "not absolute",
        ),
        (
            json!({"input": inside, "workflow": "web", "output": "/tmp"}),
            403,
            "output",
        ),
        (
            json!({"input": inside, "workflow": "nope"}),
            400,
            "no workflow named \\\"nope\\\"",
        ),
        (
            json!({"input": inside, "workflow": "web", "params": {"skip": "yes"}}),
            400,
            "params.skip: expected a boolean",
        ),
        (
            json!({"input": inside, "workflow": "web", "params": {"colour": 1}}),
            400,
            "params.colour: not a parameter",
        ),
        (
            json!({"input": inside, "workflow": "web", "priority": 1000}),
            400,
            "priority",
        ),
        (
            json!({"input": inside, "workflow": "web", "callback": "file:///etc"}),
            400,
            "callback",
        ),
        (
            json!({"input": inside, "workflow": "web", "inptu": "x"}),
            400,
            "unknown field `inptu`",
        ),
        (json!({"workflow": "web"}), 400, "missing field `input`"),
    ];
    for (body, want, says) in &cases {
        let (code, reply) = d.submit(body);
        assert_eq!(code, *want, "{body}: {reply}");
        assert!(reply.to_string().contains(says), "{body}: {reply}");
    }
    let anonymous = ureq::post(&format!("{}/v1/jobs", d.url().unwrap_or_default()))
        .send_string(&json!({"input": inside, "workflow": "web"}).to_string());
    assert!(
        matches!(anonymous, Err(ureq::Error::Status(401, _))),
        "no token, no job"
    );
    let (code, text) = d.call("POST", "/v1/jobs", Some("{not json"));
    assert_eq!(code, 400, "{text}");
    let (_, listed) = d.call("GET", "/v1/jobs", None);
    let listed: Value = serde_json::from_str(&listed)?;
    assert_eq!(listed["jobs"].as_array().map(Vec::len), Some(0), "{listed}");
    assert!(std::fs::read_dir(dir.path().join("published"))?
        .next()
        .is_none());
    Ok(())
}

#[test]
fn priorities_decide_which_queued_job_runs_next() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = Daemon::start(dir.path(), 1)?;
    let mut sources = Vec::new();
    for i in 0..20 {
        let src = dir.path().join(format!("media/clip{i:02}.mp4"));
        make_clip(&src, "256x144", 25 + i, 1, Audio::None)?;
        sources.push(src);
    }
    // Distinct priorities 50 points apart in arrival terms: arrival order cannot reorder them.
    let priority = |i: u32| ((i * 7) % 20) as i64 * 5 - 50;
    let ids: Vec<(String, i64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20u32)
            .map(|i| {
                let (d, src) = (&d, &sources[i as usize]);
                s.spawn(move || {
                    let (code, v) = d
                        .submit(&json!({"input": src, "workflow": "web", "priority": priority(i)}));
                    (
                        code,
                        v["id"].as_str().unwrap_or_default().to_string(),
                        priority(i),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .filter(|(code, _, _)| *code == 201)
            .map(|(_, id, p)| (id, p))
            .collect()
    });
    assert_eq!(ids.len(), 20);
    let mut finished: Vec<(u64, i64)> = Vec::new();
    for (id, p) in &ids {
        let job = d.wait_final(id, 180)?;
        assert_eq!(job["status"], "succeeded", "{job}");
        finished.push((job["updated_ms"].as_u64().unwrap_or(0), *p));
    }
    finished.sort();
    // One job at a time: the first to take the slot ran before the others were queued;
    // every later one is the highest priority left.
    let order: Vec<i64> = finished.iter().skip(1).map(|(_, p)| *p).collect();
    let mut want = order.clone();
    want.sort_by(|a, b| b.cmp(a));
    assert_eq!(order, want, "finish order by priority");
    Ok(())
}

#[test]
fn the_openapi_document_names_exactly_the_routes_that_answer() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = Daemon::start(dir.path(), 1)?;
    let (code, text) = d.call("GET", "/v1/openapi.json", None);
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_str(&text)?;
    let paths = doc["paths"].as_object().ok_or("no paths")?;
    assert!(paths.len() >= 12);
    for (path, ops) in paths {
        for method in ops.as_object().ok_or("no operations")?.keys() {
            let concrete = path.replace("{id}", "0000000000000000").replace("{n}", "0");
            if ops[method]["responses"]["200"]["content"]
                .get("text/event-stream")
                .is_some()
            {
                // A stream never ends: its status and type are the answer.
                let url = format!("{}{concrete}", d.url().unwrap_or_default());
                let reply = ureq::get(&url)
                    .set("authorization", &format!("Bearer {TOKEN}"))
                    .call()?;
                assert_eq!(reply.status(), 200, "{path}");
                assert_eq!(reply.content_type(), "text/event-stream", "{path}");
                continue;
            }
            let body = (method == "post").then_some("{}");
            let (code, reply) = d.call(&method.to_uppercase(), &concrete, body);
            // A route that exists answers; a missing one is axum's bare 404 or 405.
            assert!(
                code != 405 && (code != 404 || reply.contains("error")),
                "{method} {path}: {code} {reply}"
            );
        }
    }
    let (code, _) = d.call("GET", "/v1/undocumented", None);
    assert_eq!(code, 404);
    Ok(())
}
