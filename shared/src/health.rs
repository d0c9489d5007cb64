//! Health endpoints, the same on every service.
//!
//! - `GET /health/live`: the process is up (a liveness probe restarts it otherwise).
//! - `GET /health/ready`: it should get traffic: every *required* check passes and
//!   it is not draining. 503 problem otherwise, listing the checks.
//! - `GET /health`: a summary for people and dashboards, 200 while the process can
//!   serve, with every check (required or not) and its details. The order service
//!   shows its downstream dependencies and their circuit breakers here.
//!
//! Checks are built per worker (they may hold a worker's HTTP client) and handed
//! to the server as app data; see [`HealthChecks`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use futures::future::{LocalBoxFuture, join_all};
use serde_json::{Map, Value, json};

use crate::problem::Problem;

/// Name, version and start time of the running service.
#[derive(Debug, Clone)]
pub struct ServiceInfo {
    pub name: &'static str,
    pub version: &'static str,
    pub started: Instant,
}

impl ServiceInfo {
    pub fn new(name: &'static str, version: &'static str) -> Self {
        Self {
            name,
            version,
            started: Instant::now(),
        }
    }
}

/// Set once shutdown begins: readiness turns 503 while in-flight work finishes.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    draining: Arc<AtomicBool>,
}

impl Lifecycle {
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// What one check found.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    pub up: bool,
    /// Shown under the check's name in `/health` (e.g. latency, breaker state).
    pub details: Map<String, Value>,
}

impl CheckOutcome {
    pub fn up() -> Self {
        Self {
            up: true,
            details: Map::new(),
        }
    }

    pub fn down(error: impl Into<String>) -> Self {
        let mut details = Map::new();
        details.insert("error".into(), Value::String(error.into()));
        Self { up: false, details }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }
}

/// One thing a service depends on: its database, a downstream service.
pub trait HealthCheck {
    fn name(&self) -> &str;
    /// Required checks gate readiness; the others only show in `/health`.
    fn required(&self) -> bool;
    /// Should finish promptly (bound it with a timeout).
    fn check(&self) -> LocalBoxFuture<'_, CheckOutcome>;
}

/// The checks of one worker, registered as app data by the service.
#[derive(Default)]
pub struct HealthChecks(Vec<Box<dyn HealthCheck>>);

impl HealthChecks {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, check: impl HealthCheck + 'static) -> Self {
        self.0.push(Box::new(check));
        self
    }

    /// Runs the checks concurrently; `only_required` skips the optional ones.
    async fn run(&self, only_required: bool) -> (bool, Map<String, Value>) {
        let checks: Vec<&dyn HealthCheck> = self
            .0
            .iter()
            .map(|c| c.as_ref())
            .filter(|c| c.required() || !only_required)
            .collect();
        let outcomes = join_all(checks.iter().map(|c| c.check())).await;
        let mut all_required_up = true;
        let mut report = Map::new();
        for (check, outcome) in checks.iter().zip(outcomes) {
            all_required_up &= outcome.up || !check.required();
            let mut entry = Map::new();
            entry.insert(
                "status".into(),
                json!(if outcome.up { "up" } else { "down" }),
            );
            entry.insert("required".into(), json!(check.required()));
            entry.extend(outcome.details);
            report.insert(check.name().to_owned(), Value::Object(entry));
        }
        (all_required_up, report)
    }
}

/// Registers the three health routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/health").route(web::get().to(summary)))
        .service(web::resource("/health/live").route(web::get().to(live)))
        .service(web::resource("/health/ready").route(web::get().to(ready)));
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "alive"}))
}

async fn ready(
    lifecycle: web::Data<Lifecycle>,
    checks: Option<web::Data<HealthChecks>>,
) -> HttpResponse {
    if lifecycle.is_draining() {
        return Problem::new(StatusCode::SERVICE_UNAVAILABLE, "draining", "Shutting down")
            .detail("The service is draining and takes no new traffic.")
            .to_response();
    }
    let (ok, report) = match &checks {
        Some(checks) => checks.run(true).await,
        None => (true, Map::new()),
    };
    if ok {
        HttpResponse::Ok().json(json!({"status": "ready", "checks": report}))
    } else {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "Not ready")
            .detail("A required dependency is down.")
            .with("checks", report)
            .to_response()
    }
}

async fn summary(
    info: web::Data<ServiceInfo>,
    lifecycle: web::Data<Lifecycle>,
    checks: Option<web::Data<HealthChecks>>,
) -> HttpResponse {
    let (required_up, report) = match &checks {
        Some(checks) => checks.run(false).await,
        None => (true, Map::new()),
    };
    let all_up = report.values().all(|c| c["status"] == "up");
    let status = if lifecycle.is_draining() {
        "draining"
    } else if !required_up {
        "unavailable"
    } else if !all_up {
        "degraded"
    } else {
        "ok"
    };
    HttpResponse::Ok().json(json!({
        "service": info.name,
        "version": info.version,
        "status": status,
        "uptime_seconds": info.started.elapsed().as_secs(),
        "checks": report,
    }))
}
