//! Request ids and the per-request span.
//!
//! [`middleware`] is the outermost layer of every service. For each request it
//!
//! 1. takes the caller's `X-Request-Id` (when it is a sane token) or makes a new one,
//! 2. opens the `request` span that every log line of the request is recorded in
//!    (`service`, `request_id`, `method`, `route`, then `status`), as a child of
//!    the caller's trace when it sent a `traceparent`,
//! 3. makes the id reachable to handlers through the [`RequestId`] extractor
//!    (the order service forwards it downstream) and to problem bodies through
//!    [`current`],
//! 4. echoes the id on the response, logs one access line with the latency,
//!    and counts the request in the HTTP metrics.

use std::future::{Ready, ready};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use tracing::Instrument;

use crate::health::ServiceInfo;
use crate::metrics::HttpMetrics;

/// The header that carries the id, in and out.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static CURRENT: RequestId;
}

/// The id of the request being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// The caller's id when it is 1-128 visible ASCII characters of a safe set,
    /// so that ids can be logged and echoed without escaping.
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = (1..=128).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        ok.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Extracts the id that [`middleware`] assigned (or a fresh one if it did not run).
impl FromRequest for RequestId {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let id = req.extensions().get::<RequestId>().cloned();
        ready(Ok(id.unwrap_or_else(RequestId::generate)))
    }
}

/// The id of the request whose task is running, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(|id| id.0.clone()).ok()
}

/// Paths polled by probes and scrapers: logged at debug, not info.
fn is_quiet(path: &str) -> bool {
    path.starts_with("/health") || path == "/metrics"
}

/// The outermost middleware of every service; see the module docs.
///
/// # Errors
/// Passes on the inner service's error unchanged.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> actix_web::Result<ServiceResponse<impl MessageBody>> {
    let started = Instant::now();
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(RequestId::parse)
        .unwrap_or_else(RequestId::generate);
    req.extensions_mut().insert(id.clone());

    let service = req
        .app_data::<web::Data<ServiceInfo>>()
        .map_or("unknown", |info| info.name);
    let span = tracing::info_span!(
        "request",
        service,
        request_id = %id,
        method = %req.method(),
        path = %req.path(),
        route = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    crate::telemetry::adopt_remote_parent(&span, req.headers());
    let quiet = is_quiet(req.path());
    let metrics = req.app_data::<web::Data<HttpMetrics>>().cloned();
    let method = req.method().clone();
    let mut res = CURRENT
        .scope(id.clone(), next.call(req))
        .instrument(span.clone())
        .await?;

    let status = res.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    // Unmatched paths share one label so that scanners cannot blow up cardinality.
    let route = res.request().match_pattern();
    if let Some(route) = &route {
        span.record("route", route.as_str());
    }
    if let Some(metrics) = metrics {
        let route = route.as_deref().unwrap_or("unmatched");
        metrics.observe(
            method.as_str(),
            route,
            status,
            started.elapsed().as_secs_f64(),
        );
    }
    span.record("status", status);
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, latency_ms, "request failed");
        } else if quiet {
            tracing::debug!(status, latency_ms, "request completed");
        } else {
            tracing::info!(status, latency_ms, "request completed");
        }
    });
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        res.headers_mut().insert(HEADER, value);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_sane_ids_and_rejects_the_rest() {
        for ok in ["abc", "4f1c-9", "trace:span.1_2", &"a".repeat(128)] {
            assert!(RequestId::parse(ok).is_some(), "{ok:?} should be accepted");
        }
        for bad in ["", "has space", "new\nline", "é", &"a".repeat(129)] {
            assert!(
                RequestId::parse(bad).is_none(),
                "{bad:?} should be rejected"
            );
        }
    }
}
