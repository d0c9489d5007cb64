//! Fault injection for demos and resilience drills, off unless configured,
//! and changeable while the service runs.
//!
//! With a delay rate a share of requests waits a random time from the delay
//! range before being served; with a failure rate a share is answered 500 or
//! 503 with a problem body instead of being served. The settings start from
//! `CHAOS_DELAY_RATE`, `CHAOS_DELAY_MS` and `CHAOS_FAILURE_RATE` and live in
//! one [`Chaos`] per process, which [`middleware`] reads on every request (a
//! read lock and an `Arc` clone). A selection of routes (`"GET /price/{sku}"`,
//! or a path template for every method) narrows the faults to those routes;
//! empty means every route.
//!
//! With `CHAOS_CONTROL=on`, [`routes`] registers `GET` and `PUT /admin/chaos`
//! ([`paths::CHAOS_CONTROL`]), which read and change the settings; the next
//! request sees a change. They need the [`ControlChaos`] scope (or the
//! service token where the service registers one granting it) as soon as a
//! token could be presented at all ([`Caller::require_scope`]); with no
//! access control configured they are open, as the local demo wants. With
//! the switch off the path does not exist (404).
//!
//! Health, metrics, the API description and the control path itself
//! ([`paths::is_exempt_from_chaos`]) are never touched, so probes stay honest
//! and a drill can always be ended.
//!
//! Owns: the `CHAOS_*` settings ([`ChaosConfig`]), the fault middleware and
//! `/admin/chaos`. Must not know: any service's routes beyond the selections
//! it is given, databases or events.

mod config;
pub use config::ChaosConfig;

use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpRequest, get, put, web};
use rand::Rng;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::OpenApi;

use shared_auth::{Actor, Caller, Scope};
use shared_config::Switch;
use shared_http::openapi::{ApiConfig, PROBLEM_JSON};
use shared_http::paths;
use shared_http::problem::{Problem, ProblemDetails};

/// Changing the fault injection at `/admin/chaos`: operators (and the
/// service token of a service that grants it).
pub struct ControlChaos;

impl Scope for ControlChaos {
    const NAME: &'static str = "chaos:write";
}

/// The longest delay the control accepts, in milliseconds: beyond it a
/// request outlives every timeout in the shop and nothing more is learnt.
pub const MAX_DELAY_MS: u64 = 30_000;

/// One route faults apply to: a method (or any) and a path template whose
/// `{…}` segments match any one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSelector {
    method: Option<Method>,
    /// Literal segments, `None` for a `{parameter}`.
    segments: Vec<Option<String>>,
    template: String,
}

impl RouteSelector {
    /// `"GET /items/{sku}"` or `"/items/{sku}"` (every method).
    ///
    /// # Errors
    /// When the text is not such a selector.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let (method, template) = match raw.split_once(' ') {
            Some((method, template)) => {
                let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                    .map_err(|_| format!("{method:?} is not an HTTP method"))?;
                (Some(method), template.trim())
            }
            None => (None, raw),
        };
        if !template.starts_with('/') {
            return Err(format!(
                "{raw:?}: expected a path template such as \"/items/{{sku}}\", \
                 optionally after a method (\"GET /items/{{sku}}\")"
            ));
        }
        Ok(Self {
            method,
            segments: segments(template),
            template: template.to_owned(),
        })
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        self.method.as_ref().is_none_or(|m| m == method) && {
            let mut parts = path.split('/').skip(1);
            self.segments
                .iter()
                .all(|segment| match (segment, parts.next()) {
                    (Some(literal), Some(part)) => literal == part,
                    (None, Some(part)) => !part.is_empty(),
                    (_, None) => false,
                })
                && parts.next().is_none()
        }
    }

    fn same_template(&self, segments: &[Option<String>]) -> bool {
        self.segments.len() == segments.len()
            && self
                .segments
                .iter()
                .zip(segments)
                .all(|(a, b)| match (a, b) {
                    (Some(a), Some(b)) => a == b,
                    (None, None) => true,
                    _ => false,
                })
    }
}

impl std::fmt::Display for RouteSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.method {
            Some(method) => write!(f, "{method} {}", self.template),
            None => f.write_str(&self.template),
        }
    }
}

fn segments(template: &str) -> Vec<Option<String>> {
    template
        .split('/')
        .skip(1)
        .map(|s| (!(s.starts_with('{') && s.ends_with('}'))).then(|| s.to_owned()))
        .collect()
}

/// The fault injection in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Share of requests delayed by a random time in `delay`.
    pub delay_rate: f64,
    pub delay: (Duration, Duration),
    /// Share of requests answered with a 500 or 503 problem.
    pub failure_rate: f64,
    /// The routes faults apply to; empty = every route.
    pub routes: Vec<RouteSelector>,
}

impl Settings {
    fn is_off(&self) -> bool {
        self.delay_rate == 0.0 && self.failure_rate == 0.0
    }

    fn applies_to(&self, method: &Method, path: &str) -> bool {
        !paths::is_exempt_from_chaos(path)
            && (self.routes.is_empty() || self.routes.iter().any(|r| r.matches(method, path)))
    }
}

impl From<&ChaosConfig> for Settings {
    fn from(config: &ChaosConfig) -> Self {
        Self {
            delay_rate: config.delay_rate,
            delay: config.delay,
            failure_rate: config.failure_rate,
            routes: Vec::new(),
        }
    }
}

/// The process's live settings, shared by every worker, and the routes the
/// service serves (learnt from its API description, for checking selections).
pub struct Chaos {
    settings: RwLock<Arc<Settings>>,
    known: OnceLock<Vec<(Method, Vec<Option<String>>)>>,
}

impl Chaos {
    pub fn new(config: &ChaosConfig) -> Self {
        Self {
            settings: RwLock::new(Arc::new(Settings::from(config))),
            known: OnceLock::new(),
        }
    }

    /// The settings in force now.
    pub fn current(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn replace(&self, settings: Settings) {
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(settings);
    }

    /// Records the service's routes from its description (once; every
    /// worker describes the same routes).
    pub fn learn_routes(&self, api: &OpenApi) {
        self.known.get_or_init(|| {
            let mut known = Vec::new();
            for (path, item) in &api.paths.paths {
                let methods = [
                    (item.get.is_some(), Method::GET),
                    (item.post.is_some(), Method::POST),
                    (item.put.is_some(), Method::PUT),
                    (item.patch.is_some(), Method::PATCH),
                    (item.delete.is_some(), Method::DELETE),
                ];
                for (_, method) in methods.into_iter().filter(|(has, _)| *has) {
                    known.push((method, segments(path)));
                }
            }
            known
        });
    }

    /// Whether `selector` names a route this service serves that faults may touch.
    fn check(&self, selector: &RouteSelector) -> Result<(), String> {
        if paths::is_exempt_from_chaos(&selector.template) {
            return Err(format!("{selector}: never subject to fault injection"));
        }
        let Some(known) = self.known.get() else {
            return Ok(());
        };
        let served = known.iter().any(|(method, segments)| {
            selector.same_template(segments) && selector.method.as_ref().is_none_or(|m| m == method)
        });
        if served {
            Ok(())
        } else {
            Err(format!("{selector}: no such route on this service"))
        }
    }
}

/// What chaos decided for one request.
#[derive(Debug, PartialEq)]
struct Verdict {
    delay: Option<Duration>,
    failure: Option<StatusCode>,
}

fn decide(settings: &Settings, rng: &mut impl Rng) -> Verdict {
    let delay = rng.random_bool(settings.delay_rate).then(|| {
        let (low, high) = settings.delay;
        rng.random_range(low..=high)
    });
    let failure = rng.random_bool(settings.failure_rate).then(|| {
        if rng.random_bool(0.5) {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    });
    Verdict { delay, failure }
}

/// Middleware; reads the live [`Chaos`] from app data.
///
/// # Errors
/// Passes on the inner service's error unchanged.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> actix_web::Result<ServiceResponse<EitherBody<impl MessageBody>>> {
    let settings = req
        .app_data::<web::Data<Chaos>>()
        .map(|chaos| chaos.current())
        .filter(|s| !s.is_off() && s.applies_to(req.method(), req.path()));
    if let Some(settings) = settings {
        // The thread-local generator is not `Send`; it is dropped before the await.
        let verdict = decide(&settings, &mut rand::rng());
        if let Some(delay) = verdict.delay {
            actix_web::rt::time::sleep(delay).await;
        }
        if let Some(status) = verdict.failure {
            tracing::info!(status = status.as_u16(), "chaos: injected failure");
            let problem = Problem::new(status, "chaos_injected", "Injected failure")
                .detail("Fault injection is on; retry the request.");
            return Ok(req
                .into_response(problem.to_response())
                .map_into_right_body());
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// Registers `GET` and `PUT /admin/chaos` when `control` is on; nothing otherwise.
pub fn routes(control: Switch) -> impl Fn(&mut ApiConfig<'_>) + Clone {
    move |cfg| {
        if control.is_on() {
            cfg.service(get_chaos).service(put_chaos);
        }
    }
}

/// The delay range, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct DelayMs {
    #[schema(example = 100)]
    pub min: u64,
    #[schema(example = 500)]
    pub max: u64,
}

/// The fault injection in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChaosView {
    /// Share of requests delayed (0 to 1).
    #[schema(example = 0.1)]
    pub delay_rate: f64,
    pub delay_ms: DelayMs,
    /// Share of requests answered 500 or 503 `chaos_injected` (0 to 1).
    #[schema(example = 0.0)]
    pub failure_rate: f64,
    /// The routes faults apply to (`"GET /price/{sku}"`, or a template for
    /// every method); empty = every route.
    #[schema(example = json!(["GET /price/{sku}"]))]
    pub routes: Vec<String>,
}

impl From<&Settings> for ChaosView {
    fn from(s: &Settings) -> Self {
        Self {
            delay_rate: s.delay_rate,
            delay_ms: DelayMs {
                min: shared_http::timestamp::millis(s.delay.0),
                max: shared_http::timestamp::millis(s.delay.1),
            },
            failure_rate: s.failure_rate,
            routes: s.routes.iter().map(ToString::to_string).collect(),
        }
    }
}

/// A delay range as the control accepts it: `{"min","max"}`, `"100-500"`, or
/// one number of milliseconds.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum DelayInput {
    Range { min: u64, max: u64 },
    Fixed(u64),
    Text(String),
}

impl DelayInput {
    fn to_range(&self) -> Result<(u64, u64), String> {
        let (min, max) = match self {
            Self::Range { min, max } => (*min, *max),
            Self::Fixed(ms) => (*ms, *ms),
            Self::Text(text) => {
                let number = |s: &str| s.trim().parse::<u64>().ok();
                let parsed = match text.split_once('-') {
                    Some((a, b)) => number(a).zip(number(b)),
                    None => number(text).map(|n| (n, n)),
                };
                parsed.ok_or_else(|| {
                    format!("delay_ms {text:?}: expected \"MIN-MAX\" milliseconds")
                })?
            }
        };
        if min > max {
            return Err(format!("delay_ms: min {min} is above max {max}"));
        }
        if max > MAX_DELAY_MS {
            return Err(format!("delay_ms: at most {MAX_DELAY_MS} ms, not {max}"));
        }
        Ok((min, max))
    }
}

/// A change to the fault injection; a field left out keeps its value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChaosUpdate {
    /// Share of requests delayed, 0 to 1.
    #[schema(example = 0.1)]
    pub delay_rate: Option<f64>,
    /// `{"min","max"}`, `"MIN-MAX"` or one number, in milliseconds (at most 30000).
    #[schema(example = json!({"min": 100, "max": 500}))]
    pub delay_ms: Option<DelayInput>,
    /// Share of requests failed, 0 to 1.
    #[schema(example = 0.0)]
    pub failure_rate: Option<f64>,
    /// The routes faults apply to; `[]` = every route.
    #[schema(example = json!([]))]
    pub routes: Option<Vec<String>>,
}

impl ChaosUpdate {
    /// `current` with this change, or every reason it cannot be made.
    fn apply(&self, chaos: &Chaos, current: &Settings) -> Result<Settings, Vec<String>> {
        let mut errors = Vec::new();
        let mut next = current.clone();
        let mut rate = |name: &str, value: Option<f64>, into: &mut f64| match value {
            Some(v) if (0.0..=1.0).contains(&v) => *into = v,
            Some(v) => errors.push(format!("{name}: {v} is not a share from 0 to 1")),
            None => {}
        };
        rate("delay_rate", self.delay_rate, &mut next.delay_rate);
        rate("failure_rate", self.failure_rate, &mut next.failure_rate);
        match self.delay_ms.as_ref().map(DelayInput::to_range) {
            Some(Ok((min, max))) => {
                next.delay = (Duration::from_millis(min), Duration::from_millis(max));
            }
            Some(Err(e)) => errors.push(e),
            None => {}
        }
        if let Some(routes) = &self.routes {
            next.routes.clear();
            for raw in routes {
                match RouteSelector::parse(raw).and_then(|r| chaos.check(&r).map(|()| r)) {
                    Ok(selector) if !next.routes.contains(&selector) => next.routes.push(selector),
                    Ok(_) => {}
                    Err(e) => errors.push(e),
                }
            }
        }
        if errors.is_empty() {
            Ok(next)
        } else {
            Err(errors)
        }
    }
}

/// A caller allowed to see and change the fault injection.
pub struct Controller(Actor);

impl FromRequest for Controller {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let result = Caller::from_request(req, payload)
            .into_inner()
            .and_then(|caller| {
                caller.require_scope(ControlChaos::NAME)?;
                Ok(Self(caller.actor()))
            });
        std::future::ready(result)
    }
}

/// The fault injection in force. Present only with `CHAOS_CONTROL=on`; once
/// tokens are verified (`AUTH_ISSUER`) or a service token is set, it needs
/// `chaos:write` (or that service token), whatever `AUTH_REQUIRED` says.
#[utoipa::path(
    tag = "chaos",
    security(("bearer_token" = [])),
    responses(
        (status = 200, description = "The settings in force.", body = ChaosView),
    )
)]
#[get("/admin/chaos")]
async fn get_chaos(_: Controller, chaos: web::Data<Chaos>) -> web::Json<ChaosView> {
    web::Json(ChaosView::from(&*chaos.current()))
}

/// Changes the fault injection; the next request sees the change. Fields left
/// out keep their values. Present only with `CHAOS_CONTROL=on`; once tokens
/// are verified (`AUTH_ISSUER`) or a service token is set, it needs
/// `chaos:write` (or that service token), whatever `AUTH_REQUIRED` says.
#[utoipa::path(
    tag = "chaos",
    security(("bearer_token" = [])),
    request_body = ChaosUpdate,
    responses(
        (status = 200, description = "The settings now in force.", body = ChaosView),
        (status = 400, description = "`invalid_request`: a rate outside 0..1, a delay range upside down or over 30000 ms, a route this service does not serve or that is never faulted (`errors` lists each).",
            body = ProblemDetails, content_type = PROBLEM_JSON),
    )
)]
#[put("/admin/chaos")]
async fn put_chaos(
    Controller(actor): Controller,
    chaos: web::Data<Chaos>,
    body: web::Json<ChaosUpdate>,
) -> Result<web::Json<ChaosView>, Problem> {
    let next = body.apply(&chaos, &chaos.current()).map_err(|errors| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid request",
        )
        .detail(errors.join("; "))
        .with("errors", &errors)
    })?;
    let view = ChaosView::from(&next);
    chaos.replace(next);
    tracing::info!(
        actor = %actor,
        delay_rate = view.delay_rate,
        delay_ms = %format_args!("{}-{}", view.delay_ms.min, view.delay_ms.max),
        failure_rate = view.failure_rate,
        routes = ?view.routes,
        "chaos settings changed"
    );
    Ok(web::Json(view))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn off() -> Settings {
        Settings::from(&ChaosConfig::off())
    }

    #[test]
    fn off_never_interferes() {
        let mut rng = rand::rng();
        for _ in 0..1000 {
            assert_eq!(
                decide(&off(), &mut rng),
                Verdict {
                    delay: None,
                    failure: None
                }
            );
        }
    }

    #[test]
    fn rates_and_ranges_are_respected() {
        let settings = Settings {
            delay_rate: 0.5,
            delay: (Duration::from_millis(100), Duration::from_millis(500)),
            failure_rate: 1.0,
            routes: Vec::new(),
        };
        let mut rng = rand::rng();
        let verdicts: Vec<_> = (0..2000).map(|_| decide(&settings, &mut rng)).collect();
        let delayed = verdicts.iter().filter(|v| v.delay.is_some()).count();
        assert!(
            (800..1200).contains(&delayed),
            "about half delayed, got {delayed}"
        );
        for v in &verdicts {
            assert!(v.failure.is_some());
            if let Some(d) = v.delay {
                assert!((Duration::from_millis(100)..=Duration::from_millis(500)).contains(&d));
            }
        }
    }

    #[test]
    fn selectors_match_their_routes_only() {
        let one = RouteSelector::parse("get /items/{sku}").expect("valid");
        assert_eq!(one.to_string(), "GET /items/{sku}");
        assert!(one.matches(&Method::GET, "/items/A001"));
        assert!(!one.matches(&Method::PUT, "/items/A001"));
        assert!(!one.matches(&Method::GET, "/items"));
        assert!(!one.matches(&Method::GET, "/items/A001/history"));
        assert!(!one.matches(&Method::GET, "/items/"));
        let any = RouteSelector::parse("/items").expect("valid");
        assert!(any.matches(&Method::POST, "/items"));
        assert!(!any.matches(&Method::POST, "/items/A001"));
        for bad in ["items", "FETCH", "G€T /x", ""] {
            assert!(RouteSelector::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_plumbing_and_the_control_are_never_faulted() {
        let all = Settings {
            failure_rate: 1.0,
            ..off()
        };
        for path in [
            paths::LIVE,
            paths::METRICS,
            paths::OPENAPI,
            paths::CHAOS_CONTROL,
        ] {
            assert!(!all.applies_to(&Method::GET, path), "{path}");
        }
        assert!(all.applies_to(&Method::GET, "/items"));
    }

    #[test]
    fn updates_are_checked_whole_and_keep_what_they_leave_out() {
        let chaos = Chaos::new(&ChaosConfig::off());
        let update = |body: serde_json::Value| {
            let update: ChaosUpdate = serde_json::from_value(body).expect("fits the schema");
            update.apply(&chaos, &chaos.current())
        };
        let next =
            update(serde_json::json!({"failure_rate": 1, "delay_ms": "300-800"})).expect("valid");
        assert_eq!(next.failure_rate, 1.0);
        assert_eq!(next.delay_rate, 0.0);
        assert_eq!(
            next.delay,
            (Duration::from_millis(300), Duration::from_millis(800))
        );
        let next = update(serde_json::json!({"delay_ms": {"min": 5, "max": 5}})).expect("valid");
        assert_eq!(next.delay.1, Duration::from_millis(5));
        let errors = update(serde_json::json!({
            "delay_rate": 1.5, "failure_rate": -1, "delay_ms": "800-300", "routes": ["/health", "x"]
        }))
        .expect_err("all wrong");
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(update(serde_json::json!({"delay_ms": 30_001})).is_err());
        assert!(update(serde_json::json!({"delay_ms": "fast"})).is_err());
    }
}
