//! The engine's side of the `spool` Lua API: probing, hashing, ffmpeg runs and HTTP posts,
//! done for a script running on a blocking thread, never on the async runtime's workers.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::queue::{trace_command, Priority, Slots};
use crate::media::argv_guard::{check_argv, ArgvRules};
use crate::media::hash::md5_file;
use crate::media::probe::probe;
use crate::media::run::run_ffmpeg;
use crate::media::tools::Tools;
use crate::script::{HostApi, HttpReply, HttpRequest};

pub(super) struct EngineApi {
    pub tools: Tools,
    pub runtime: tokio::runtime::Handle,
    pub cancel: CancellationToken,
    pub rules: ArgvRules,
    pub slots: Arc<Slots>,
    pub priority: Priority,
    pub trace: Option<Arc<Mutex<std::fs::File>>>,
}

impl HostApi for EngineApi {
    fn probe(&self, path: &Path) -> Result<serde_json::Value, String> {
        let info = self
            .runtime
            .block_on(probe(&self.tools, path))
            .map_err(|e| e.to_string())?;
        serde_json::to_value(info).map_err(|e| e.to_string())
    }

    fn md5(&self, path: &Path) -> Result<String, String> {
        md5_file(path).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn ffmpeg(
        &self,
        argv: Vec<String>,
        on_progress: &mut dyn FnMut(serde_json::Value),
    ) -> Result<serde_json::Value, String> {
        check_argv(&[], &argv, &self.rules).map_err(|e| format!("spool.ffmpeg refused: {e}"))?;
        let args: Vec<std::ffi::OsString> = argv.iter().map(Into::into).collect();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        self.runtime.block_on(async {
            let _slot = tokio::select! {
                s = self.slots.acquire(self.priority) => s,
                _ = self.cancel.cancelled() => return Err("cancelled".to_string()),
            };
            trace_command(self.trace.as_deref(), "lua", &args);
            let run = run_ffmpeg(&self.tools, &args, &self.cancel, move |p| {
                let _ = tx.send(p.clone());
            });
            tokio::pin!(run);
            // Progress is handed to Lua on this thread, between ffmpeg's reports.
            let outcome = loop {
                tokio::select! {
                    r = &mut run => break r,
                    Some(p) = rx.recv() => on_progress(json!({
                        "time": p.out_time_s, "frame": p.frame, "fps": p.fps, "speed": p.speed,
                    })),
                }
            };
            let done = outcome.map_err(|e| e.to_string())?;
            Ok(json!({ "elapsed": done.elapsed_s }))
        })
    }

    fn http_post(&self, request: HttpRequest) -> Result<HttpReply, String> {
        post(&request)
    }
}

/// One HTTP POST with a timeout; a non-2xx status is a reply, not an error.
pub(super) fn post(request: &HttpRequest) -> Result<HttpReply, String> {
    let scheme_ok = request.url.starts_with("http://") || request.url.starts_with("https://");
    if !scheme_ok {
        return Err(format!(
            "{:?}: only http:// and https:// URLs can be posted to",
            request.url
        ));
    }
    let agent = ureq::AgentBuilder::new()
        .timeout(request.timeout)
        .redirects(0)
        .build();
    let mut call = agent
        .post(&request.url)
        .set("Content-Type", &request.content_type)
        .set("User-Agent", concat!("spool/", env!("CARGO_PKG_VERSION")));
    for (k, v) in &request.headers {
        call = call.set(k, v);
    }
    let response = match call.send_bytes(&request.body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(format!("POST {}: {e}", request.url)),
    };
    let status = response.status();
    // Replies are for logs and decisions; a huge body is cut, not buffered whole.
    let mut body = String::new();
    use std::io::Read;
    let _ = response
        .into_reader()
        .take(64 * 1024)
        .read_to_string(&mut body);
    Ok(HttpReply { status, body })
}
