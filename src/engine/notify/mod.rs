//! Webhooks: job events posted as JSON in the background, retried with backoff, never
//! holding up the job. `spool run` waits a bounded time for the last ones before it exits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{json, Value};

mod http;

pub use http::post;

use super::Engine;
use crate::script::HttpRequest;
use crate::store::now_ms;
use crate::workflow::schema::{Webhook, WebhookEvent};

const ATTEMPTS: u32 = 5;
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long the end of a run waits for deliveries still in flight.
pub(super) const DRAIN: Duration = Duration::from_secs(30);

/// Progress milestones sent, as percent.
pub(super) const MILESTONES: [u32; 3] = [25, 50, 75];

/// Numbers events so a receiver can order them (retries may deliver out of order).
#[derive(Default)]
pub(super) struct Sequence(AtomicU64);

impl Engine {
    /// Posts `event` to every webhook that wants it, in the background.
    pub(super) fn notify(&self, hooks: &[Webhook], event: WebhookEvent, mut body: Value) {
        let wanted: Vec<Webhook> = hooks
            .iter()
            .filter(|h| h.events.contains(&event))
            .cloned()
            .collect();
        if wanted.is_empty() {
            return;
        }
        if let Value::Object(m) = &mut body {
            m.insert("event".into(), json!(event));
            m.insert("time_ms".into(), json!(now_ms()));
            m.insert(
                "seq".into(),
                json!(self.webhook_seq.0.fetch_add(1, Ordering::Relaxed)),
            );
        }
        let Ok(bytes) = serde_json::to_vec(&body) else {
            return;
        };
        for hook in wanted {
            let bytes = bytes.clone();
            let delivery = tokio::spawn(deliver(hook, bytes));
            if let Ok(mut d) = self.deliveries.lock() {
                d.retain(|h| !h.is_finished());
                d.push(delivery);
            }
        }
    }

    /// Sends a job's event to `hooks` for a caller outside the job (a submission that ended
    /// before its job could start): the same delivery, retries and signature.
    pub fn send_event(&self, hooks: &[Webhook], event: WebhookEvent, body: Value) {
        self.notify(hooks, event, body);
    }

    /// Waits up to `limit` for deliveries in flight.
    pub(super) async fn drain_webhooks(&self, limit: Duration) {
        let pending: Vec<_> = match self.deliveries.lock() {
            Ok(mut d) => d.drain(..).collect(),
            Err(_) => return,
        };
        let _ = tokio::time::timeout(limit, futures::future::join_all(pending)).await;
    }
}

/// The header a signed delivery carries: `sha256=` and the hex HMAC-SHA256 of the body.
pub const SIGNATURE_HEADER: &str = "X-Spool-Signature";

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    use hmac::Mac;
    // HMAC takes a key of any length; new_from_slice cannot fail for it.
    let mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .map(|m| m.chain_update(body).finalize().into_bytes());
    match mac {
        Ok(bytes) => format!("sha256={}", hex_of(&bytes)),
        Err(_) => String::new(),
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn deliver(hook: Webhook, body: Vec<u8>) {
    let mut delay = Duration::from_secs(1);
    let mut headers: Vec<(String, String)> = hook.headers.clone().into_iter().collect();
    if let Some(secret) = &hook.secret {
        headers.push((SIGNATURE_HEADER.into(), signature(secret, &body)));
    }
    for attempt in 1..=ATTEMPTS {
        let request = HttpRequest {
            url: hook.url.clone(),
            body: body.clone(),
            content_type: "application/json".into(),
            headers: headers.clone(),
            timeout: TIMEOUT,
        };
        let sent = tokio::task::spawn_blocking(move || post(&request)).await;
        let outcome = match sent {
            Ok(Ok(reply)) if (200..300).contains(&reply.status) => return,
            // The receiver refused this request; sending it again will not help.
            Ok(Ok(reply))
                if (400..500).contains(&reply.status) && ![408, 429].contains(&reply.status) =>
            {
                tracing::warn!(url = %hook.url, status = reply.status, "webhook refused; not retried");
                return;
            }
            Ok(Ok(reply)) => format!("status {}", reply.status),
            Ok(Err(e)) => e,
            Err(e) => e.to_string(),
        };
        if attempt == ATTEMPTS {
            tracing::warn!(url = %hook.url, attempts = ATTEMPTS, error = %outcome, "webhook not delivered");
            return;
        }
        tracing::debug!(url = %hook.url, attempt, error = %outcome, "webhook failed; retrying");
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signatures_are_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            super::signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
