//! A real browser for the dashboard tests: Debian's Chromium, headless, driven through
//! ChromeDriver's WebDriver protocol (plain JSON over HTTP), with a fresh profile each time.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use super::wait_until;

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

/// The WebDriver key code for Enter.
pub const ENTER: &str = "\u{E007}";

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium session of `width`×`height`.
    pub fn start(width: u32, height: u32) -> Result<Browser, String> {
        for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            if !Path::new(tool).exists() {
                return Err(format!(
                    "{tool} is missing: `bash .ci/setup` installs Debian's chromium and chromium-driver"
                ));
            }
        }
        let port = free_port()?;
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("chromedriver: {e}"))?;
        let base = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            _profile: profile,
        };
        let status = format!("{}/status", browser.base);
        wait_until("chromedriver", Duration::from_secs(20), || {
            ureq::get(&status)
                .call()
                .ok()
                .and_then(|r| r.into_json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true)
        })?;
        // Without the background-networking flags Chromium keeps dialling out, and this
        // machine's closed network refuses each attempt.
        let args = json!([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            format!("--user-data-dir={}", browser._profile.path().display()),
            format!("--window-size={width},{height}"),
        ]);
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
        }}});
        let created = browser.call("POST", "/session", Some(caps))?;
        browser.session = created["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session: {created}"))?
            .to_string();
        Ok(browser)
    }

    /// One WebDriver command; its `value`, or the driver's error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let request = ureq::request(method, &url).timeout(Duration::from_secs(60));
        let reply = match body {
            Some(b) => request.send_json(b),
            None => request.call(),
        };
        let value: Value = match reply {
            Ok(r) => r.into_json().map_err(|e| e.to_string())?,
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap_or_default();
                return Err(format!("{method} {path}: {code} {text}"));
            }
            Err(e) => return Err(format!("{method} {path}: {e}")),
        };
        Ok(value["value"].clone())
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    pub fn goto(&self, url: &str) -> Result<(), String> {
        self.session_call("POST", "/url", Some(json!({ "url": url })))
            .map(|_| ())
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub fn exec(&self, script: &str, args: Value) -> Result<Value, String> {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// The WebDriver id of the first element matching `css`.
    pub fn find(&self, css: &str) -> Result<String, String> {
        let found = self.session_call(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|v| v.as_str())
            .map(String::from)
            .ok_or_else(|| format!("no element {css}"))
    }

    pub fn click(&self, css: &str) -> Result<(), String> {
        let id = self.find(css)?;
        self.session_call("POST", &format!("/element/{id}/click"), Some(json!({})))
            .map(|_| ())
    }

    /// Types `text` into the element (keys, as a user would).
    pub fn type_into(&self, css: &str, text: &str) -> Result<(), String> {
        let id = self.find(css)?;
        self.session_call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .map(|_| ())
    }

    /// Waits until `script` (a function body returning a value) returns something truthy.
    pub fn wait_for(&self, what: &str, secs: u64, script: &str) -> Result<Value, String> {
        let mut last = Value::Null;
        let mut error = String::new();
        let result = wait_until(what, Duration::from_secs(secs), || {
            match self.exec(script, json!([])) {
                Ok(v) => {
                    last = v;
                    !(last.is_null() || last == false || last == 0 || last.as_str() == Some(""))
                }
                Err(e) => {
                    error = e;
                    false
                }
            }
        });
        result.map(|_| last).map_err(|e| format!("{e} ({error})"))
    }

    pub fn set_size(&self, width: u32, height: u32) -> Result<(), String> {
        self.session_call(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .map(|_| ())
    }

    pub fn screenshot(&self, path: &Path) -> Result<(), String> {
        let png = self.session_call("GET", "/screenshot", None)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or(""))
            .map_err(|e| e.to_string())?;
        std::fs::write(path, bytes).map_err(|e| e.to_string())
    }

    /// What the page logged at SEVERE level (errors, failed loads, CSP refusals) since the
    /// last call.
    pub fn console_errors(&self) -> Result<Vec<String>, String> {
        let entries = self.session_call("POST", "/se/log", Some(json!({ "type": "browser" })))?;
        Ok(entries
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or("").to_string())
            .collect())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.session_call("DELETE", "", None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
