//! Who may call the API. In order: a daemon on loopback with no token answers only requests
//! addressed to a loopback name (a DNS-rebinding page cannot reach it under its own name);
//! a browser's cross-site request that changes something is refused; the dashboard page is
//! open (it holds no data, and asks for the token); a download link with a valid signature
//! opens its one file; everything else needs `Authorization: Bearer <token>` when a token is set.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::{downloads, error, page};
use crate::daemon::Daemon;

pub(super) struct Guard {
    pub daemon: Arc<Daemon>,
    /// The listener is on a loopback address.
    pub loopback: bool,
}

pub(super) async fn check(State(g): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let token = g.daemon.token.as_deref();
    let headers = request.headers();
    if token.is_none() && g.loopback && !loopback_host(headers) {
        return error(
            StatusCode::FORBIDDEN,
            "this daemon answers only requests addressed to localhost or a loopback address",
        );
    }
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if !reads && cross_site(headers) {
        return error(
            StatusCode::FORBIDDEN,
            "cross-site requests may not change anything here",
        );
    }
    let path = request.uri().path();
    let open = page::is_page(path)
        || match token {
            None => true,
            Some(t) => {
                bearer(headers) == Some(t)
                    || (reads
                        && downloads::is_signable(path)
                        && downloads::signature_valid(t, path, request.uri().query()))
            }
        };
    if !open {
        return error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
    }
    next.run(request).await
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// `Host` names this machine's loopback: `localhost`, `127.x.y.z` or `[::1]`, any port.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        // HTTP/1.0 without Host: no browser sends that.
        return true;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A browser says the request comes from another site (Fetch metadata), or its `Origin`
/// is not the address it was sent to.
fn cross_site(headers: &HeaderMap) -> bool {
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if matches!(fetch_site, "cross-site" | "same-site") {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let origin = origin.to_str().unwrap_or("");
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    origin_host.is_empty() || !origin_host.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, header::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn loopback_names_only() {
        for ok in [
            "127.0.0.1:7300",
            "localhost:7300",
            "[::1]:7300",
            "LOCALHOST",
            "127.9.9.9",
        ] {
            assert!(loopback_host(&headers(&[("host", ok)])), "{ok}");
        }
        for bad in [
            "evil.example:7300",
            "192.168.1.2:7300",
            "127.0.0.1.evil.example",
            "[::2]:1",
        ] {
            assert!(!loopback_host(&headers(&[("host", bad)])), "{bad}");
        }
    }

    #[test]
    fn cross_site_requests_are_recognised() {
        let same = headers(&[
            ("host", "127.0.0.1:7300"),
            ("origin", "http://127.0.0.1:7300"),
        ]);
        assert!(!cross_site(&same));
        let other = headers(&[
            ("host", "127.0.0.1:7300"),
            ("origin", "http://evil.example"),
        ]);
        assert!(cross_site(&other));
        let null = headers(&[("host", "127.0.0.1:7300"), ("origin", "null")]);
        assert!(cross_site(&null));
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!cross_site(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(
            !cross_site(&headers(&[("host", "127.0.0.1:7300")])),
            "curl sends no Origin"
        );
    }
}
