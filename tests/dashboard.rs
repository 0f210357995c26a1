//! The dashboard in a real browser (Debian's Chromium, headless, through ChromeDriver) against a
//! real `spool watch` with a token: the page asks for the token, shows a dropped file running
//! with its progress moving and then done with its outputs, Cancel stops a running job, Retry
//! brings back a parked file once its workflow is fixed, Pause and Resume (one by keyboard)
//! change a folder, a file name made of HTML stays text, nothing is logged to the console, and
//! the page fits a phone's width. Screenshots land in the target directory.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::api::{Daemon, TOKEN};
use common::browser::{Browser, ENTER};
use common::{make_clip, wait_until, Audio, TestResult};
use serde_json::{json, Value};

/// Errors on discovery for files named `fixme*` (an upstream service that is down); the fix
/// removes the script from the workflow.
const HOOKS: &str = r#"local M = {}
function M.on_discover(file)
  if string.find(file.name, "fixme", 1, true) then
    error("the catalogue service is down")
  end
  return { action = "accept" }
end
return M
"#;

fn workflow(with_script: bool) -> String {
    let script = if with_script {
        "script: {path: hooks.lua, hooks: [on_discover]}\n"
    } else {
        ""
    };
    format!(
        "version: 1\nname: web\n\
         chunking: {{segment_seconds: 1, min_duration_seconds: 0}}\n\
         encode: {{mode: ladder, keyframe_interval_seconds: 1}}\n\
         profiles:\n- {{name: p240, codec: h264, height: 240, always_encode: true, preset: medium}}\n\
         {script}\
         watch: {{folders: [in], output: out, settle_seconds: 0.5, rescan_seconds: 1, max_attempts: 1}}\n"
    )
}

/// A daemon with the API token, one job at a time, watching `in` with the workflow above.
fn start_daemon(dir: &Path) -> Result<Daemon, Box<dyn std::error::Error>> {
    for d in ["in", "out"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    std::fs::write(dir.join("hooks.lua"), HOOKS)?;
    std::fs::write(dir.join("wf.yaml"), workflow(true))?;
    std::fs::write(
        dir.join("spool.yaml"),
        format!(
            "state: state\nlisten: 127.0.0.1:0\ntoken: {TOKEN}\nworkflows: [wf.yaml]\n\
             max_jobs: 1\nconcurrency: 1\n"
        ),
    )?;
    Daemon::spawn(dir)
}

fn get(d: &Daemon, path: &str) -> Value {
    serde_json::from_str(&d.call("GET", path, None).1).unwrap_or(Value::Null)
}

fn jobs_named(d: &Daemon, name: &str) -> Vec<Value> {
    get(d, "/v1/jobs")["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|j| j["input"].as_str().is_some_and(|i| i.ends_with(name)))
        .cloned()
        .collect()
}

/// Writes a clip beside the folder and moves it in whole (as an upload tool would).
fn drop_clip(dir: &Path, name: &str, seconds: u32) -> Result<(), String> {
    let staged = dir.join(format!("staged-{seconds}.mp4"));
    make_clip(&staged, "320x240", 25, seconds, Audio::Bursts)?;
    std::fs::rename(&staged, dir.join("in").join(name)).map_err(|e| e.to_string())
}

fn artifact(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// JavaScript: the `data-state` of the Finished row whose input's name is `arguments[0]`.
const FINISHED_STATE: &str = "for (const tr of document.querySelectorAll('#finished tr[data-job]')) {\
     if (tr.querySelector('td.name').textContent === arguments[0]) return tr.dataset.state; } return null;";

fn wait_finished(b: &Browser, name: &str, state: &str, secs: u64) -> Result<(), String> {
    let script = format!(
        "const f = function() {{ {FINISHED_STATE} }}; return f.apply(null, [{}]) === {};",
        json!(name),
        json!(state)
    );
    b.wait_for(&format!("{name} to be {state} on the page"), secs, &script)
        .map(|_| ())
}

#[test]
fn the_dashboard_shows_work_live_and_its_buttons_act_on_the_daemon() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = start_daemon(dir.path())?;
    let url = d.url().ok_or("no url")?;
    let b = Browser::start(1280, 900)?;

    // The page asks for the token once, then goes live.
    b.goto(&format!("{url}/"))?;
    b.wait_for(
        "the token form",
        10,
        "return !document.getElementById('login').hidden;",
    )?;
    b.type_into("#token", TOKEN)?;
    b.click("#login button[type=submit]")?;
    b.wait_for(
        "the live stream",
        10,
        "return document.getElementById('connection').dataset.state === 'live';",
    )?;
    // Every value the running section's progress takes, as the page renders it.
    b.exec(
        "window.seen = []; const r = document.getElementById('running');\
         new MutationObserver(() => { for (const a of r.querySelectorAll('article[data-job]'))\
           window.seen.push([a.dataset.job, Number(a.dataset.progress)]); })\
         .observe(r, { childList: true, subtree: true }); return true;",
        json!([]),
    )?;

    // A file named like markup, and one whose discovery hook fails (parked after 1 attempt).
    let markup = "<img src=x onerror=alert(1)>.mp4";
    drop_clip(dir.path(), "fixme.mp4", 2)?;
    drop_clip(dir.path(), markup, 8)?;
    wait_finished(&b, markup, "succeeded", 120)?;
    let job = jobs_named(&d, markup)
        .first()
        .cloned()
        .ok_or("no job for the clip")?;
    let id = job["id"].as_str().unwrap_or("");
    let seen = b.exec("return window.seen;", json!([]))?;
    let mut values: Vec<f64> = seen
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p[0] == id)
        .filter_map(|p| p[1].as_f64())
        .collect();
    values.dedup();
    let moving = values.iter().filter(|v| **v > 0.0 && **v < 1.0).count();
    assert!(
        moving >= 2,
        "the progress bar did not move while the job ran: {values:?}"
    );
    assert!(
        values.windows(2).all(|w| w[1] >= w[0]),
        "progress went backwards: {values:?}"
    );
    // The name is shown as text; no element was made from it.
    assert_eq!(
        b.exec(
            "return document.querySelectorAll('#finished img').length;",
            json!([])
        )?,
        0
    );
    // Its outputs are links that open without the header (signed), and the manifest too.
    let links = b.exec(
        "const tr = [...document.querySelectorAll('#finished tr')].find(t => t.dataset.job === arguments[0]);\
         return [...tr.querySelectorAll('a')].map(a => a.href);",
        json!([id]),
    )?;
    let links: Vec<String> = links
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str().map(String::from))
        .collect();
    assert!(links.len() >= 2, "{links:?}");
    for link in &links {
        let reply = ureq::get(link).call().map_err(|e| format!("{link}: {e}"))?;
        assert_eq!(reply.status(), 200, "{link}");
    }
    let unsigned = links[0].split('?').next().unwrap_or("");
    assert!(
        matches!(ureq::get(unsigned).call(), Err(ureq::Error::Status(401, _))),
        "an output opened without a signature or the token"
    );

    // The parked file with its reason; fix the workflow, Retry, and it goes through.
    b.wait_for(
        "the parked file",
        60,
        "const a = document.querySelector('#attention article[data-state=parked]');\
         return a && a.querySelector('.reason').textContent.includes('catalogue service is down');",
    )?;
    std::fs::write(dir.path().join("wf.yaml"), workflow(false))?;
    wait_until("the workflow to reload", Duration::from_secs(20), || {
        std::fs::read_to_string(dir.path().join("watch.log"))
            .is_ok_and(|l| l.contains("workflow changed"))
    })?;
    b.click("#attention button[data-action=retry]")?;
    wait_finished(&b, "fixme.mp4", "succeeded", 120)?;
    b.wait_for(
        "the attention list to empty",
        20,
        "return document.querySelectorAll('#attention article').length === 0;",
    )?;

    // Cancel a running job from the page.
    drop_clip(dir.path(), "long.mp4", 60)?;
    b.wait_for(
        "long.mp4 to run",
        60,
        "const a = document.querySelector('#running article h3');\
         return a && a.textContent === 'long.mp4';",
    )?;
    b.screenshot(&artifact("dashboard-running.png"))?;
    b.click("#running article button[data-action=cancel]")?;
    let long = jobs_named(&d, "long.mp4")
        .first()
        .cloned()
        .ok_or("no job for long.mp4")?;
    let long_id = long["id"].as_str().unwrap_or("").to_string();
    wait_until("long.mp4 to be cancelled", Duration::from_secs(15), || {
        get(&d, &format!("/v1/jobs/{long_id}"))["job"]["status"] == "cancelled"
    })?;
    wait_finished(&b, "long.mp4", "cancelled", 15)?;

    // Pause with a click, Resume with the keyboard; the daemon agrees each time.
    let folder_state = || get(&d, "/v1/folders")["folders"][0]["state"].clone();
    b.click("#folders button[data-action=pause]")?;
    wait_until("the folder to pause", Duration::from_secs(10), || {
        folder_state() == "paused"
    })?;
    b.wait_for(
        "the page to show it paused",
        10,
        "const tr = document.querySelector('#folders tr[data-folder]'); return tr && tr.dataset.state === 'paused';",
    )?;
    b.exec(
        "document.querySelector('#folders button[data-action=resume]').focus(); return true;",
        json!([]),
    )?;
    b.type_into("#folders button[data-action=resume]", ENTER)?;
    wait_until("the folder to resume", Duration::from_secs(10), || {
        folder_state() == "watching"
    })?;

    b.screenshot(&artifact("dashboard-desktop.png"))?;
    let errors = b.console_errors()?;
    assert!(errors.is_empty(), "console errors: {errors:#?}");

    // A phone's width: nothing wider than the screen.
    b.set_size(390, 844)?;
    let overflow = b.exec(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
        json!([]),
    )?;
    assert!(
        overflow.as_i64().unwrap_or(1) <= 0,
        "the page is wider than a phone: {overflow}"
    );
    b.screenshot(&artifact("dashboard-phone.png"))?;
    Ok(())
}

#[test]
fn another_site_cannot_press_the_buttons_or_read_the_board() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = start_daemon(dir.path())?;
    let url = d.url().ok_or("no url")?;
    let folder = dir.path().join("in").canonicalize()?;
    let body = json!({ "folder": folder }).to_string();
    let post = |headers: &[(&str, &str)]| {
        let mut r =
            ureq::post(&format!("{url}/v1/folders/pause")).set("content-type", "application/json");
        for (k, v) in headers {
            r = r.set(k, v);
        }
        match r.send_string(&body) {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(_) => 0,
        }
    };
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(post(&[]), 401, "no token");
    assert_eq!(
        post(&[
            ("authorization", &bearer),
            ("origin", "http://evil.example")
        ]),
        403,
        "a cross-site page holding the token still may not change anything"
    );
    assert_eq!(
        post(&[("authorization", &bearer), ("sec-fetch-site", "cross-site")]),
        403
    );
    assert_eq!(get(&d, "/v1/folders")["folders"][0]["state"], "watching");
    // The page is open (it holds no data); the stream and the API are not.
    let status = |path: &str| match ureq::get(&format!("{url}{path}")).call() {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(_) => 0,
    };
    assert_eq!(status("/"), 200);
    assert_eq!(status("/dashboard.js"), 200);
    assert_eq!(status("/v1/events"), 401);
    assert_eq!(status("/v1/jobs"), 401);
    assert_eq!(status("/v1/jobs/0123456789abcdef/manifest?sig=00"), 401);
    let page = ureq::get(&format!("{url}/")).call()?;
    let policy = page.header("content-security-policy").unwrap_or("");
    assert!(
        policy.contains("frame-ancestors 'none'") && policy.contains("script-src 'self'"),
        "{policy}"
    );
    Ok(())
}
