//! One HTTP POST, for webhooks and `spool.http.post`.

use crate::script::{HttpReply, HttpRequest};

/// One HTTP POST with a timeout; a non-2xx status is a reply, not an error.
pub fn post(request: &HttpRequest) -> Result<HttpReply, String> {
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
