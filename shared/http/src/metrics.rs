//! Prometheus metrics, served at `GET /metrics`.
//!
//! Each service process owns one [`Registry`] (no global state, so the tests
//! can run many services in one process and still read exact counts). A
//! service registers its own metric families in it, then hands it to
//! `shared_server::start`, which adds the HTTP metrics every service has
//! and serves the text exposition (OpenMetrics, which Prometheus scrapes
//! natively).
//!
//! The HTTP metrics are recorded by [`middleware`], which sits outside CORS
//! and the error handlers so that it counts the status the caller gets.
//!
//! Metric names live in a `names` module in each crate and service that
//! registers metrics (this one's: [`names`]); `scripts/check-dashboards.py`
//! reads them all.

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

pub use prometheus_client::registry::Registry;

use crate::problem::{ProblemCode, code_of};

/// The HTTP metrics every service has; each crate and service names its own metrics in a `names` module of its own (counters gain `_total` on the wire).
pub mod names {
    pub const HTTP_REQUESTS: &str = "http_requests";
    pub const HTTP_REQUEST_DURATION: &str = "http_request_duration_seconds";
    pub const HTTP_PROBLEMS: &str = "http_problems";
}

/// Media type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The latency objectives' threshold, in seconds: the alerting rules
/// (`observability/prometheus/rules/`) count the requests answered within it,
/// so it is a bucket bound of its own rather than a value interpolated
/// between 0.256 and 0.512.
pub const LATENCY_OBJECTIVE_SECONDS: f64 = 0.3;

/// Latency buckets from 0.5 ms to about 4 s, doubling, plus
/// [`LATENCY_OBJECTIVE_SECONDS`].
pub fn latency_histogram() -> Histogram {
    let mut bounds: Vec<f64> = exponential_buckets(0.0005, 2.0, 14).collect();
    bounds.push(LATENCY_OBJECTIVE_SECONDS);
    bounds.sort_by(f64::total_cmp);
    Histogram::new(bounds)
}

/// A histogram family whose histograms use [`latency_histogram`].
pub type LatencyFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// A new, empty [`LatencyFamily`].
pub fn latency_family<L: Clone + std::hash::Hash + Eq>() -> LatencyFamily<L> {
    Family::new_with_constructor(latency_histogram)
}

/// The labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    /// The route template (`/items/{sku}`), never the raw path: bounded cardinality.
    pub route: String,
    pub status: u16,
}

/// The labels of the problem counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProblemLabels {
    /// The problem's stable `code` (`database_unavailable`, `not_found`, …):
    /// a fixed set per service.
    pub code: String,
}

/// The labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

/// Request count and latency by route template, method and status.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<HttpLabels, Counter>,
    duration: LatencyFamily<RouteLabels>,
    problems: Family<ProblemLabels, Counter>,
}

impl HttpMetrics {
    /// Registers both families in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            duration: latency_family(),
            problems: Family::default(),
        };
        registry.register(
            names::HTTP_REQUESTS,
            "HTTP requests answered, by method, route template and status",
            metrics.requests.clone(),
        );
        registry.register(
            names::HTTP_REQUEST_DURATION,
            "Time to answer HTTP requests, by method and route template",
            metrics.duration.clone(),
        );
        registry.register(
            names::HTTP_PROBLEMS,
            "Error responses answered with a problem body, by its code \
             (database_unavailable: the database could not be reached)",
            metrics.problems.clone(),
        );
        metrics
    }

    /// Counts one problem answered.
    pub fn observe_problem(&self, code: &str) {
        self.problems
            .get_or_create(&ProblemLabels {
                code: code.to_owned(),
            })
            .inc();
    }

    /// Counts one answered request and its latency.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&HttpLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.duration
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(seconds);
    }
}

/// Records every request in the [`HttpMetrics`] found in app data (when
/// there are none, it only passes the request on).
///
/// # Errors
/// Passes on the inner service's error unchanged (and records nothing for it).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> actix_web::Result<ServiceResponse<impl MessageBody>> {
    let started = Instant::now();
    let metrics = req.app_data::<web::Data<HttpMetrics>>().cloned();
    let method = req.method().clone();
    let res = next.call(req).await?;
    if let Some(metrics) = metrics {
        // Unmatched paths share one label so that scanners cannot blow up cardinality.
        let route = res.request().match_pattern();
        let route = route.as_deref().unwrap_or("unmatched");
        let status = res.status().as_u16();
        metrics.observe(
            method.as_str(),
            route,
            status,
            started.elapsed().as_secs_f64(),
        );
        if let Some(ProblemCode(code)) = code_of(res.response()) {
            metrics.observe_problem(&code);
        }
    }
    Ok(res)
}

/// The registry once every family is registered: shared by the workers.
#[derive(Clone)]
pub struct MetricsRegistry(Arc<Registry>);

impl MetricsRegistry {
    /// Freezes `registry`: no family can be added after this.
    pub fn new(registry: Registry) -> Self {
        Self(Arc::new(registry))
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.0);
        text
    }
}

/// `GET /metrics`.
pub async fn serve(registry: web::Data<MetricsRegistry>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(registry.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_metrics_render_by_route_template() {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        http.observe("GET", "/items/{sku}", 200, 0.002);
        http.observe("GET", "/items/{sku}", 200, 0.004);
        http.observe("GET", "/items/{sku}", 404, 0.001);
        let text = MetricsRegistry::new(registry).render();
        assert!(
            text.contains(
                r#"http_requests_total{method="GET",route="/items/{sku}",status="200"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"status="404"} 1"#), "{text}");
        assert!(!text.contains("http_problems_total{"), "none yet: {text}");
        assert!(
            text.contains(
                r#"http_request_duration_seconds_count{method="GET",route="/items/{sku}"} 3"#
            ),
            "{text}"
        );
    }

    #[test]
    fn problems_are_counted_by_code() {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        http.observe_problem("database_unavailable");
        http.observe_problem("database_unavailable");
        let text = MetricsRegistry::new(registry).render();
        assert!(
            text.contains(r#"http_problems_total{code="database_unavailable"} 2"#),
            "{text}"
        );
    }

    #[test]
    fn the_latency_objective_is_a_bucket_bound() {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        http.observe("POST", "/orders", 201, 0.29);
        http.observe("POST", "/orders", 201, 0.31);
        let text = MetricsRegistry::new(registry).render();
        let bucket = |le: &str| {
            format!(
                r#"http_request_duration_seconds_bucket{{le="{le}",method="POST",route="/orders"}}"#
            )
        };
        assert!(text.contains(&format!("{} 0", bucket("0.256"))), "{text}");
        assert!(text.contains(&format!("{} 1", bucket("0.3"))), "{text}");
        assert!(text.contains(&format!("{} 2", bucket("0.512"))), "{text}");
    }
}
