//! The engine's side of the `spool` Lua API: probing, hashing, ffmpeg runs and HTTP posts,
//! done for a script running on a blocking thread, never on the async runtime's workers.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::engine::exec::{Command, Phase, Placement, Runner};
use crate::engine::notify::post;
use crate::media::argv_guard::{check_argv, ArgvRules};
use crate::media::hash::md5_file;
use crate::media::probe::probe;
use crate::script::{HostApi, HttpReply, HttpRequest};

pub(super) struct EngineApi {
    pub runner: Arc<Runner>,
    pub runtime: tokio::runtime::Handle,
    pub cancel: CancellationToken,
    pub rules: ArgvRules,
    pub placement: Placement,
}

impl HostApi for EngineApi {
    fn probe(&self, path: &Path) -> Result<serde_json::Value, String> {
        let info = self
            .runtime
            .block_on(probe(self.runner.tools(), path))
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
        let command = Command {
            phase: Phase::Lua,
            label: "spool.ffmpeg".into(),
            args: argv.iter().map(Into::into).collect(),
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        self.runtime.block_on(async {
            let run = self
                .runner
                .run(&command, &self.placement, &self.cancel, move |p| {
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
