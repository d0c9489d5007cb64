//! The `request` span and the access log: one span and one line per request.
//!
//! [`middleware`] runs just inside [`crate::request_id::middleware`], whose id
//! it reads. For each request it
//!
//! 1. opens the `request` span that every log line of the request is recorded
//!    in (`service`, `request_id`, `method`, `path`, then `route` and
//!    `status`), as a child of the caller's trace when it sent a `traceparent`,
//! 2. runs the rest of the stack inside that span,
//! 3. logs one line with the `status` and `latency_ms`: a warning for a 5xx,
//!    debug for the probes and scrapes ([`crate::paths::is_probe`]) that
//!    would otherwise drown the rest, info for everything else.
//!
//! Everything the layers inside do to the response (CORS, problem bodies for
//! bare errors) happens before the line is written, so it logs the status the
//! caller gets.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use tracing::Instrument;

use crate::paths;
use crate::request_id::RequestId;
use crate::service::ServiceInfo;
use crate::telemetry;

/// Opens the request's span and logs its access line; see the module docs.
///
/// # Errors
/// Passes on the inner service's error unchanged (and logs no line for it).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> actix_web::Result<ServiceResponse<impl MessageBody>> {
    let started = Instant::now();
    let span = request_span(&req);
    telemetry::adopt_remote_parent(&span, req.headers());
    let quiet = paths::is_probe(req.path());
    let res = next.call(req).instrument(span.clone()).await?;

    let status = res.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Some(route) = res.request().match_pattern() {
        span.record("route", route.as_str());
    }
    span.record("status", status);
    let problem = crate::problem::code_of(res.response()).map(|c| c.0);
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(
                status,
                latency_ms,
                problem = problem.as_deref(),
                "request failed"
            );
        } else if quiet {
            tracing::debug!(status, latency_ms, "request completed");
        } else {
            tracing::info!(status, latency_ms, "request completed");
        }
    });
    Ok(res)
}

/// The `request` span, with `route` and `status` left for [`middleware`] to
/// record once the response is known.
fn request_span(req: &ServiceRequest) -> tracing::Span {
    let service = req
        .app_data::<web::Data<ServiceInfo>>()
        .map_or("unknown", |info| info.name);
    // Absent only when the request-id middleware is not wired outside this one.
    let id = req.extensions().get::<RequestId>().cloned();
    tracing::info_span!(
        "request",
        service,
        request_id = id.as_ref().map(tracing::field::display),
        method = %req.method(),
        path = %req.path(),
        route = tracing::field::Empty,
        status = tracing::field::Empty,
    )
}
