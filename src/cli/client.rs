//! Talks to a `spool watch` daemon's API when one holds the state directory.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use spool::daemon::{endpoint_file, Endpoint};

pub struct Client {
    endpoint: Endpoint,
    agent: ureq::Agent,
}

impl Client {
    /// The daemon holding `state`, if one is running (its endpoint file names a live pid).
    pub fn find(state: &Path) -> Option<Client> {
        let text = std::fs::read(endpoint_file(state)).ok()?;
        let endpoint: Endpoint = serde_json::from_slice(&text).ok()?;
        let pid = nix::unistd::Pid::from_raw(endpoint.pid as i32);
        nix::sys::signal::kill(pid, None).ok()?;
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .build();
        Some(Client { endpoint, agent })
    }

    fn call(&self, request: ureq::Request, body: Option<Value>) -> Result<Value> {
        let request = match &self.endpoint.token {
            Some(t) => request.set("Authorization", &format!("Bearer {t}")),
            None => request,
        };
        let reply = match body {
            Some(b) => request.send_json(b),
            None => request.call(),
        };
        match reply {
            Ok(r) => Ok(r.into_json()?),
            Err(ureq::Error::Status(code, r)) => {
                let v: Value = r.into_json().unwrap_or_default();
                bail!(
                    "{} (HTTP {code})",
                    v["error"].as_str().unwrap_or("the daemon refused")
                )
            }
            Err(e) => Err(e).context(format!("spool watch at {}", self.endpoint.url)),
        }
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        self.call(
            self.agent.get(&format!("{}{path}", self.endpoint.url)),
            None,
        )
    }

    pub fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.call(
            self.agent.post(&format!("{}{path}", self.endpoint.url)),
            Some(body),
        )
    }
}
