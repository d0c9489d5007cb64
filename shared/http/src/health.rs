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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::dev::{AppService, HttpServiceFactory};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, guard, web};
use futures::future::{LocalBoxFuture, join_all};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::openapi::{ApiConfig, PROBLEM_JSON};
use crate::paths;
use crate::problem::{Problem, ProblemDetails};
use crate::service::ServiceInfo;

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
    /// Returns whether every required check is up, and each check's report.
    async fn run(&self, only_required: bool) -> (bool, BTreeMap<String, CheckReport>) {
        let checks: Vec<&dyn HealthCheck> = self
            .0
            .iter()
            .map(|c| c.as_ref())
            .filter(|c| c.required() || !only_required)
            .collect();
        let outcomes = join_all(checks.iter().map(|c| c.check())).await;
        let mut all_required_up = true;
        let mut report = BTreeMap::new();
        for (check, outcome) in checks.iter().zip(outcomes) {
            all_required_up &= outcome.up || !check.required();
            report.insert(
                check.name().to_owned(),
                CheckReport::new(check.required(), outcome),
            );
        }
        (all_required_up, report)
    }
}

/// Up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Up,
    Down,
}

/// One check in `/health` and `/health/ready`: its status, whether it gates
/// readiness, and its details (latency, error, breaker state, …) beside them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckReport {
    pub status: CheckStatus,
    /// Whether readiness waits for this check.
    pub required: bool,
    /// Further members, by check (e.g. `latency_ms`, `error`, `breaker`).
    #[serde(flatten)]
    #[schema(ignore)]
    pub details: Map<String, Value>,
}

impl CheckReport {
    fn new(required: bool, outcome: CheckOutcome) -> Self {
        let mut details = outcome.details;
        // The report's own members are not overridable by a check's details.
        details.retain(|key, _| key != "status" && key != "required");
        Self {
            status: if outcome.up {
                CheckStatus::Up
            } else {
                CheckStatus::Down
            },
            required,
            details,
        }
    }
}

/// The summary's overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SummaryStatus {
    /// Every check is up.
    Ok,
    /// Every required check is up, some optional one is down.
    Degraded,
    /// A required check is down: readiness is failing.
    Unavailable,
    /// Shutting down: readiness is failing while in-flight work finishes.
    Draining,
}

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthSummary {
    /// The service's name.
    pub service: &'static str,
    #[schema(example = "0.1.0")]
    pub version: &'static str,
    pub status: SummaryStatus,
    pub uptime_seconds: u64,
    /// Every check, required or not, by name.
    pub checks: BTreeMap<String, CheckReport>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LiveStatus {
    Alive,
}

/// `GET /health/live`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    pub status: LiveStatus,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    Ready,
}

/// `GET /health/ready` while ready.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub status: ReadyStatus,
    /// The required checks, by name.
    pub checks: BTreeMap<String, CheckReport>,
}

/// Registers the three health routes (and their description).
pub fn routes(cfg: &mut ApiConfig<'_>) {
    cfg.service(SummaryRoute) // GET /health
        .service(LiveRoute) // GET /health/live
        .service(ReadyRoute); // GET /health/ready
}

// actix's route attributes (`#[get("/health")]`) take only a literal, and the
// health paths are the constants in `crate::paths`, which the access log and
// fault injection read too. So each route is a unit struct that registers its
// handler at its constant the way `#[get]` does (a resource guarded by GET,
// so that other methods reach the default service and get its 405), and that
// carries the handler's `#[utoipa::path]` through `impl_for`.

/// `GET /health`, registered by [`routes`].
struct SummaryRoute;

/// `GET /health/live`, registered by [`routes`].
struct LiveRoute;

/// `GET /health/ready`, registered by [`routes`].
struct ReadyRoute;

impl HttpServiceFactory for SummaryRoute {
    fn register(self, config: &mut AppService) {
        get_route(paths::HEALTH, "health_summary", health_summary).register(config);
    }
}

impl HttpServiceFactory for LiveRoute {
    fn register(self, config: &mut AppService) {
        get_route(paths::LIVE, "health_live", health_live).register(config);
    }
}

impl HttpServiceFactory for ReadyRoute {
    fn register(self, config: &mut AppService) {
        get_route(paths::READY, "health_ready", health_ready).register(config);
    }
}

/// What `#[get(path)]` makes: a named resource whose only route is `GET`.
fn get_route<F, Args>(path: &str, name: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .name(name)
        .guard(guard::Get())
        .to(handler)
}

/// Liveness: the process is up.
#[utoipa::path(
    get,
    path = paths::LIVE,
    impl_for = LiveRoute,
    tag = "health",
    responses((status = 200, description = "The process is alive.", body = Liveness))
)]
async fn health_live() -> HttpResponse {
    HttpResponse::Ok().json(Liveness {
        status: LiveStatus::Alive,
    })
}

/// Readiness: whether this instance should get traffic.
///
/// 503 while a required check is down (`not_ready`, with the checks) or while
/// shutting down (`draining`).
#[utoipa::path(
    get,
    path = paths::READY,
    impl_for = ReadyRoute,
    tag = "health",
    responses(
        (status = 200, description = "Ready for traffic.", body = Readiness),
        (status = 503, description = "`not_ready`: a required check is down (the problem lists `checks`); \
            `draining`: shutting down.", body = ProblemDetails, content_type = PROBLEM_JSON),
    )
)]
async fn health_ready(
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
        None => (true, BTreeMap::new()),
    };
    if ok {
        HttpResponse::Ok().json(Readiness {
            status: ReadyStatus::Ready,
            checks: report,
        })
    } else {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "Not ready")
            .detail("A required dependency is down.")
            .with("checks", report)
            .to_response()
    }
}

/// A summary for people and dashboards: 200 while the process can serve,
/// with every check and its details.
#[utoipa::path(
    get,
    path = paths::HEALTH,
    impl_for = SummaryRoute,
    tag = "health",
    responses((status = 200, description = "The service, its version and every check.", body = HealthSummary))
)]
async fn health_summary(
    info: web::Data<ServiceInfo>,
    lifecycle: web::Data<Lifecycle>,
    checks: Option<web::Data<HealthChecks>>,
) -> HttpResponse {
    let (required_up, report) = match &checks {
        Some(checks) => checks.run(false).await,
        None => (true, BTreeMap::new()),
    };
    let all_up = report.values().all(|c| c.status == CheckStatus::Up);
    let status = if lifecycle.is_draining() {
        SummaryStatus::Draining
    } else if !required_up {
        SummaryStatus::Unavailable
    } else if !all_up {
        SummaryStatus::Degraded
    } else {
        SummaryStatus::Ok
    };
    HttpResponse::Ok().json(HealthSummary {
        service: info.name,
        version: info.version,
        status,
        uptime_seconds: info.started.elapsed().as_secs(),
        checks: report,
    })
}
