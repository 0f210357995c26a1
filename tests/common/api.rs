//! A real `spool watch` for the API tests: its config (API roots, token, callback secret),
//! HTTP calls with the token, and a callback receiver that keeps each request's signature.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::{make_clip, spool_path, wait_until, Audio};

pub const SECRET: &str = "s3cret-for-callbacks";
pub const TOKEN: &str = "platform-token";

const HOOKS: &str = r#"local M = {}
function M.on_discover(file)
  if spool.params.skip then
    return { action = "skip", reason = "asked to skip by " .. spool.params.label }
  end
  return { action = "accept" }
end
return M
"#;

pub struct Daemon {
    pub child: Child,
    pub state: PathBuf,
}

impl Daemon {
    /// A daemon whose API may read `dir/media` and write `dir/published`.
    pub fn start(dir: &Path, max_jobs: usize) -> Result<Daemon, Box<dyn std::error::Error>> {
        for d in ["in", "out", "media", "published"] {
            std::fs::create_dir_all(dir.join(d))?;
        }
        std::fs::write(dir.join("hooks.lua"), HOOKS)?;
        std::fs::write(
            dir.join("wf.yaml"),
            "version: 1\nname: web\n\
             chunking: {segment_seconds: 1, min_duration_seconds: 0}\n\
             encode: {mode: ladder, keyframe_interval_seconds: 1}\n\
             profiles:\n- {name: p144, codec: h264, height: 144, always_encode: true, preset: ultrafast}\n\
             script: {path: hooks.lua, hooks: [on_discover], params: {skip: false, label: nobody}}\n\
             watch: {folders: [in], output: out, settle_seconds: 1}\n",
        )?;
        std::fs::write(
            dir.join("spool.yaml"),
            format!(
                "state: state\nlisten: 127.0.0.1:0\ntoken: {TOKEN}\nworkflows: [wf.yaml]\nmax_jobs: {max_jobs}\n\
                 concurrency: 2\napi: {{input_roots: [media], output_roots: [published], callback_secret: {SECRET}}}\n"
            ),
        )?;
        Daemon::spawn(dir)
    }

    /// `spool watch --config dir/spool.yaml` (logging to `dir/watch.log`), once its API answers.
    pub fn spawn(dir: &Path) -> Result<Daemon, Box<dyn std::error::Error>> {
        Daemon::spawn_with(dir, &[])
    }

    /// The same with extra environment variables (e.g. `SPOOL_CLOCK_FILE`).
    pub fn spawn_with(
        dir: &Path,
        env: &[(&str, String)],
    ) -> Result<Daemon, Box<dyn std::error::Error>> {
        let log = std::fs::File::create(dir.join("watch.log"))?;
        let child = Command::new(spool_path())
            .args(["watch", "--config"])
            .arg(dir.join("spool.yaml"))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("SPOOL_LOG", "spool=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let d = Daemon {
            child,
            state: dir.join("state"),
        };
        wait_until("the daemon's API", Duration::from_secs(20), || {
            d.url().is_some()
        })?;
        Ok(d)
    }

    pub fn url(&self) -> Option<String> {
        let text = std::fs::read(self.state.join("daemon.json")).ok()?;
        let v: Value = serde_json::from_slice(&text).ok()?;
        v["url"].as_str().map(String::from)
    }

    /// (status, body) of a request; error statuses are answers too.
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let url = format!("{}{path}", self.url().unwrap_or_default());
        let request = ureq::request(method, &url)
            .set("content-type", "application/json")
            .set("authorization", &format!("Bearer {TOKEN}"));
        let result = match body {
            Some(b) => request.send_string(b),
            None => request.call(),
        };
        match result {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    pub fn submit(&self, body: &Value) -> (u16, Value) {
        let (code, text) = self.call("POST", "/v1/jobs", Some(&body.to_string()));
        (code, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn job(&self, id: &str) -> Value {
        let (_, text) = self.call("GET", &format!("/v1/jobs/{id}"), None);
        serde_json::from_str::<Value>(&text).unwrap_or(Value::Null)["job"].clone()
    }

    pub fn wait_final(&self, id: &str, secs: u64) -> Result<Value, String> {
        let mut last = Value::Null;
        wait_until(
            &format!("job {id} to end"),
            Duration::from_secs(secs),
            || {
                last = self.job(id);
                ["succeeded", "failed", "skipped", "cancelled"]
                    .contains(&last["status"].as_str().unwrap_or(""))
            },
        )?;
        Ok(last)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each callback received: its signature header and its body.
pub type Received = Arc<Mutex<Vec<(String, String)>>>;

/// A local server that answers 200 and keeps each request's signature header and body.
pub fn callback_server() -> std::io::Result<(String, Received)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/spool", listener.local_addr()?);
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let (mut length, mut signature, mut line) = (0usize, String::new(), String::new());
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("x-spool-signature:") {
                    signature = line[line.find(':').map_or(0, |i| i + 1)..]
                        .trim()
                        .to_string();
                }
                line.clear();
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                if let Ok(mut g) = kept.lock() {
                    g.push((signature, String::from_utf8_lossy(&body).into_owned()));
                }
            }
            let _ = (&stream)
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    Ok((url, got))
}

/// What a receiver computes to check a callback: HMAC-SHA256 of the body under the secret.
pub fn expected_signature(body: &str) -> String {
    use hmac::Mac;
    let mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes())
        .map(|m| m.chain_update(body.as_bytes()).finalize().into_bytes())
        .unwrap_or_default();
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

pub fn clip(path: &Path, seconds: u32) -> Result<(), String> {
    make_clip(path, "256x144", 25, seconds, Audio::Bursts)
}
