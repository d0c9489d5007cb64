//! The call path to a dependency: [`Downstream`] is the one place every
//! outgoing call of a service goes through:
//!
//! 1. the dependency's circuit breaker is asked first (an open breaker fails
//!    the call at once, without touching the network);
//! 2. the request carries the caller's `X-Request-Id`, the W3C `traceparent`
//!    when tracing export is on, and this service's [`Credentials`] where
//!    the dependency takes them (a token that cannot be had fails the call like an
//!    unreachable dependency; a token the dependency refuses with 401 is
//!    dropped, so that the next call fetches a new one);
//! 3. the whole exchange, connect to last body byte, is bounded by the
//!    request timeout or by the call's [`Deadline`], whichever comes first;
//!    the time left, less [`CallPolicy::margin`], travels along as
//!    `X-Request-Timeout-Ms`, and a call with no time left is not made;
//! 4. a call that fails on the way (a connection error, a timeout, a 502,
//!    503 or 504) is tried again, up to `RETRY_MAX_ATTEMPTS` attempts in all,
//!    after a jittered exponential backoff or the dependency's `Retry-After`
//!    if longer, never when the wait would end past the deadline, and only
//!    while the dependency's [`RetryBudget`] has a retry to give. Every call
//!    made through here must be safe to repeat (the caller's clients make
//!    them so: an id per request, idempotent updates, reads);
//! 6. each attempt goes to the endpoint the dependency's [`Balancer`] picks
//!    (one of its replicas), and a retry to another endpoint than the
//!    attempts before it while one is in rotation; while there is one, a
//!    500 is tried again too (on that other endpoint: a fault of one replica
//!    need not be the answer). With one endpoint, every attempt goes there.
//! 0. (before all of it) the dependency's [`Bulkhead`] is asked for a slot:
//!    past `*_MAX_IN_FLIGHT` calls in flight the call is refused at once
//!    ([`CallError::Busy`]), never queued. A compensating release skips it:
//!    shedding an undo would leave stock held until its reservation expires;
//! 5. the outcome is reported to the breaker, once per call however many
//!    attempts it took: the permit is taken before the first attempt and
//!    settled with the last one's outcome. A retry that succeeds is one
//!    success, and three failed attempts are one failure, not three, so
//!    retries neither open the breaker sooner nor hide that a dependency
//!    failed. 5xx, timeouts and transport errors count as failures, a 4xx
//!    does not (it is the caller's fault), and neither does a call cut short
//!    by the caller's deadline (it says how little time the caller had, not
//!    how the dependency is doing), unless an earlier attempt of it had
//!    failed on the dependency's account: a slow dependency whose retry the
//!    deadline cut short still counts as failing.
//!
//! The awc client inside is per worker (awc clients are not `Send`), created
//! once when the worker starts, so no request pays for client set-up and
//! connections are pooled.
//!
//! It knows nothing of what the calls mean: the service's typed clients
//! (order's `InventoryClient`, `PricingClient`) build paths and bodies and
//! read the answers; calls are counted in [`CallMetrics`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::{Method, StatusCode, header};
use actix_web::web::Bytes;
use futures::FutureExt;
use futures::future::LocalBoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use shared_auth::client::{AccessToken, TokenSource};
use shared_http::deadline::{self, Deadline};
use shared_http::health::{CheckOutcome, HealthCheck};
use shared_http::problem::RETRY_SOON;
use shared_http::request_id::{self, RequestId};

use crate::balancer::{Balancer, Endpoint, Verdict};
use crate::breaker::{CircuitBreaker, Rejected};
use crate::bulkhead::{Bulkhead, Full};
pub use crate::call_metrics::CallMetrics;
use crate::retry::{Backoff, RetryBudget, RetryConfig, next_delay};

/// Most bytes read from a dependency's answer: far more than any real answer
/// (a reservation or quote of 100 lines is a few kilobytes), small enough that a
/// misbehaving dependency cannot make this service buffer without bound.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// How long a `/health` probe of a dependency may take: a health page must
/// answer quickly even when a dependency hangs.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a downstream call produced no usable answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("circuit breaker open")]
    BreakerOpen(#[from] Rejected),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("transport error: {0}")]
    Transport(String),
    #[error("answered {status}")]
    Status {
        status: StatusCode,
        problem: Value,
        /// The answer's `Retry-After`, if it had one.
        retry_after: Option<Duration>,
    },
    #[error("unreadable answer: {0}")]
    Decode(String),
    /// This service's own token could not be had: the request was not sent.
    #[error("no access token for the call: {0}")]
    Credentials(String),
    /// The call's deadline passed (or left too little to try): before the
    /// call was sent, while waiting for its answer, or at the dependency
    /// (its 504 `deadline_exceeded`).
    #[error("the deadline passed ({})", if *sent { "after the call was sent" } else { "the call was not sent" })]
    DeadlineExceeded { sent: bool },
    /// Too many calls to this dependency in flight: not sent.
    #[error(transparent)]
    Busy(#[from] Full),
}

impl CallError {
    /// Whether this outcome counts against the dependency's breaker;
    /// `None` when it says nothing about the dependency either way.
    fn is_failure(&self) -> Option<bool> {
        match self {
            // A prompt 503 that says when to come back (a dependency whose
            // database is restarting) says the dependency answers: opening
            // the breaker for its whole reset timeout would refuse calls long
            // after it is back. Its Retry-After and the retry budget pace
            // the calls instead.
            Self::Status {
                status,
                retry_after: Some(_),
                ..
            } if *status == StatusCode::SERVICE_UNAVAILABLE => None,
            Self::Status { status, .. } => Some(status.is_server_error()),
            Self::Busy(_) => Some(false),
            // Refused before any endpoint was tried: the endpoints' own
            // breakers have counted what made them refuse.
            Self::BreakerOpen(_) | Self::DeadlineExceeded { .. } => None,
            Self::Timeout(_) | Self::Transport(_) | Self::Decode(_) | Self::Credentials(_) => {
                Some(true)
            }
        }
    }

    /// The `outcome` label of the dependency-call metrics.
    fn metric_outcome(&self) -> &'static str {
        match self {
            Self::BreakerOpen(_) => "rejected",
            Self::Timeout(_) => "timeout",
            Self::Transport(_) => "transport",
            Self::Decode(_) => "decode",
            Self::Credentials(_) => "credentials",
            Self::DeadlineExceeded { .. } => "deadline_exceeded",
            Self::Busy(_) => "busy",
            Self::Status { status, .. } if status.is_server_error() => "server_error",
            Self::Status { .. } => "client_error",
        }
    }

    /// Whether trying the same call again may work: the failures of the way
    /// there (connection errors, timeouts) and of gateways (502, 503, 504).
    fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(_) | Self::Timeout(_) => true,
            Self::Status { status, .. } => matches!(status.as_u16(), 502..=504),
            Self::BreakerOpen(_)
            | Self::Busy(_)
            | Self::Decode(_)
            | Self::Credentials(_)
            | Self::DeadlineExceeded { .. } => false,
        }
    }

    /// Whether another endpoint may answer where this one failed: besides
    /// [`CallError::is_retryable`], any 5xx (a fault of one replica).
    fn is_retryable_elsewhere(&self) -> bool {
        self.is_retryable()
            || matches!(self, Self::Status { status, .. } if status.is_server_error())
    }

    /// How the attempt went for the endpoint that answered it.
    fn verdict(outcome: &Result<(StatusCode, Bytes), Self>) -> Verdict {
        match outcome.as_ref().err() {
            // Not reached, or the connection dropped: a replica that is gone.
            Some(Self::Transport(_)) => Verdict::Unreachable,
            error => match error.map_or(Some(false), Self::is_failure) {
                Some(false) => Verdict::Success,
                Some(true) => Verdict::Failure,
                None => Verdict::Neither,
            },
        }
    }

    /// The wait the dependency asked for before a retry.
    fn asked_wait(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the call may have reached the dependency and changed
    /// something there (so a compensating call is worth making).
    pub fn may_have_landed(&self) -> bool {
        match self {
            Self::BreakerOpen(_) | Self::Credentials(_) | Self::Busy(_) => false,
            Self::DeadlineExceeded { sent } => *sent,
            _ => true,
        }
    }

    /// Whether the call's deadline ran out.
    pub fn is_deadline(&self) -> bool {
        matches!(self, Self::DeadlineExceeded { .. })
    }

    /// When a caller should retry, as far as this error tells.
    pub fn retry_after(&self) -> Duration {
        match self {
            Self::BreakerOpen(rejected) => rejected.retry_after,
            _ => RETRY_SOON,
        }
    }

    /// The status of a 4xx answer, if that is what this is.
    pub fn client_error(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } if status.is_client_error() => Some(*status),
            _ => None,
        }
    }

    /// The problem body of a non-2xx answer, if that is what this is.
    pub fn problem(&self) -> Option<&Value> {
        match self {
            Self::Status { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// The `code` of an answer's problem body, if it has one.
    pub fn problem_code(&self) -> Option<&str> {
        self.problem()?["code"].as_str()
    }

    /// Whether the dependency has no such route: a 405, or a 404 with the
    /// generic `not_found` code (or no problem code at all, as from a plain
    /// proxy) rather than one naming a missing resource. What a release of
    /// the dependency older than the endpoint answers.
    pub fn route_not_served(&self) -> bool {
        match self.client_error() {
            Some(StatusCode::METHOD_NOT_ALLOWED) => true,
            Some(StatusCode::NOT_FOUND) => matches!(self.problem_code(), None | Some("not_found")),
            _ => false,
        }
    }
}

/// How this service proves who it is to a dependency.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// Nothing is sent (pricing; inventory with no token configured).
    None,
    /// `SERVICE_TOKEN`, sent as is.
    ServiceToken(Arc<str>),
    /// Tokens of the client credentials grant (`AUTH_CLIENT_ID`), fetched
    /// and cached by one source the workers share.
    Client(Arc<TokenSource>),
}

/// The bearer token one call carries, and where it came from.
enum Bearer {
    None,
    Static(Arc<str>),
    Fetched(AccessToken),
}

impl Bearer {
    fn header(&self) -> Option<String> {
        match self {
            Self::None => None,
            Self::Static(token) => Some(format!("Bearer {token}")),
            Self::Fetched(token) => Some(format!("Bearer {}", token.secret())),
        }
    }
}

impl Credentials {
    /// The token for the next call.
    async fn bearer(&self) -> Result<Bearer, CallError> {
        match self {
            Self::None => Ok(Bearer::None),
            Self::ServiceToken(token) => Ok(Bearer::Static(token.clone())),
            Self::Client(source) => source
                .token()
                .await
                .map(Bearer::Fetched)
                .map_err(|e| CallError::Credentials(e.to_string())),
        }
    }

    /// After a 401: a fetched token is dropped, so that the next call gets a
    /// new one (the provider may have rotated its keys, or revoked it).
    fn refused(&self, bearer: &Bearer) {
        if let (Self::Client(source), Bearer::Fetched(token)) = (self, bearer) {
            tracing::info!(
                client_id = source.client_id(),
                "the dependency refused this service's token; fetching a new one next time"
            );
            source.forget(token);
        }
    }
}

/// How calls to one dependency spend their time.
#[derive(Clone, Debug)]
pub struct CallPolicy {
    /// The most one call may take (`REQUEST_TIMEOUT_MS`), deadline or not.
    pub timeout: Duration,
    /// Taken off the time left before it is sent as `X-Request-Timeout-Ms`.
    pub margin: Duration,
    /// The budget of a compensating call of its own ([`Call::compensation`]).
    pub compensation: Duration,
}

/// What one call may spend: its deadline.
#[derive(Clone, Copy, Debug)]
pub struct Call {
    deadline: Deadline,
    /// Whether the dependency's bulkhead may refuse it.
    sheddable: bool,
}

impl Call {
    /// A call of the flow that owns `deadline` (an order's budget).
    pub fn within(deadline: Deadline) -> Self {
        Self {
            deadline,
            sheddable: true,
        }
    }

    /// A compensating call: it gets a budget of its own from now, since the
    /// flow's may be spent by the time something needs undoing.
    pub fn compensation(policy: &CallPolicy) -> Self {
        Self {
            deadline: Deadline::after(policy.compensation),
            sheddable: false,
        }
    }

    pub fn deadline(self) -> Deadline {
        self.deadline
    }

    /// The same call, made to end `reserve` sooner: for an optional step
    /// that must leave the steps after it their time.
    #[must_use]
    pub fn leaving(self, reserve: Duration) -> Self {
        Self {
            deadline: self.deadline.earlier_by(reserve),
            ..self
        }
    }
}

/// A dependency's retry settings and its budget (shared by the workers).
#[derive(Clone)]
pub struct Retries {
    pub config: RetryConfig,
    pub budget: Arc<RetryBudget>,
}

/// What stands between the order flow and one dependency, shared by the
/// workers: its breaker, its retry budget, its bulkhead, and the balancer
/// over its endpoints.
#[derive(Clone)]
pub struct Guards {
    pub breaker: Arc<CircuitBreaker>,
    pub retries: Retries,
    pub bulkhead: Bulkhead,
    pub balancer: Arc<Balancer>,
}

/// One dependency: its endpoints, worker-local HTTP client, shared guards.
///
/// `Clone` is cheap: the guards are shared, the awc client is per worker.
#[derive(Clone)]
pub struct Downstream {
    name: &'static str,
    /// The dependency's address as configured (`/health` shows it).
    base_url: String,
    http: awc::Client,
    breaker: Arc<CircuitBreaker>,
    balancer: Arc<Balancer>,
    policy: CallPolicy,
    retries: Retries,
    bulkhead: Bulkhead,
    credentials: Credentials,
    metrics: CallMetrics,
}

impl Downstream {
    pub fn new(
        name: &'static str,
        base_url: String,
        guards: Guards,
        policy: CallPolicy,
        credentials: Credentials,
        metrics: CallMetrics,
        user_agent: &'static str,
    ) -> Self {
        let Guards {
            breaker,
            retries,
            bulkhead,
            balancer,
        } = guards;
        let http = awc::Client::builder()
            .disable_redirects()
            .timeout(policy.timeout)
            .add_default_header((header::USER_AGENT, user_agent))
            .finish();
        Self {
            name,
            base_url,
            http,
            breaker,
            balancer,
            policy,
            retries,
            bulkhead,
            credentials,
            metrics,
        }
    }

    pub fn policy(&self) -> &CallPolicy {
        &self.policy
    }

    /// Sends one call through the breaker, with retries; returns the 2xx
    /// status and body.
    ///
    /// # Errors
    /// See [`CallError`].
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        request_id: &RequestId,
        call: Call,
    ) -> Result<(StatusCode, Bytes), CallError> {
        // Held until the call, retries and all, is over.
        let _slot = match call.sheddable.then(|| self.bulkhead.try_acquire()) {
            Some(Err(full)) => {
                self.metrics.call(self.name, "busy", Duration::ZERO);
                return Err(full.into());
            }
            slot => slot,
        };
        let permit = match self.breaker.try_acquire() {
            Ok(permit) => permit,
            Err(rejected) => {
                self.metrics.call(self.name, "rejected", Duration::ZERO);
                return Err(rejected.into());
            }
        };
        self.retries.budget.deposit();
        let mut attempt = 1;
        // An attempt that failed on the dependency's account, before a last
        // one cut short by the deadline: the call still counts as failed.
        // So does a call no endpoint would take (each one's breaker open).
        let mut failed_before = false;
        // The endpoints this call's attempts went to: a retry goes elsewhere.
        let mut tried = Vec::new();
        let outcome = loop {
            let outcome = self
                .attempt_on_endpoint(&method, path, body, request_id, call, &mut tried)
                .await;
            failed_before |= matches!(outcome, Err(CallError::BreakerOpen(_)));
            if attempt > 1 {
                let usable = outcome.as_ref().err().is_none_or(|e| !e.is_retryable());
                self.metrics.retried(self.name, usable);
            }
            match &outcome {
                Err(e)
                    if attempt < self.retries.config.max_attempts
                        && self.worth_retrying(e, &tried) =>
                {
                    failed_before |= e.is_failure() == Some(true);
                    let Some(wait) = self.retry_wait(e, attempt, call) else {
                        break outcome;
                    };
                    tracing::info!(dependency = self.name, %method, path, attempt, error = %e,
                        wait_ms = shared_http::timestamp::millis(wait), "retrying the call");
                    actix_web::rt::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => break outcome,
            }
        };
        let verdict = outcome
            .as_ref()
            .err()
            .map_or(Some(false), CallError::is_failure);
        match verdict.or(failed_before.then_some(true)) {
            Some(failure) => permit.record(!failure),
            // Dropped unreported: neither for nor against the dependency.
            None => drop(permit),
        }
        outcome
    }

    /// Whether a call that failed with `error`, after attempts at `tried`,
    /// is worth another attempt: a failure of the way, or a 5xx while an
    /// endpoint not yet tried is in rotation.
    fn worth_retrying(&self, error: &CallError, tried: &[Arc<Endpoint>]) -> bool {
        error.is_retryable() || (error.is_retryable_elsewhere() && self.balancer.has_other(tried))
    }

    /// One attempt, at the endpoint the balancer picks (never one of
    /// `tried` while another can be had; added to it), reported to the
    /// metrics and to the balancer.
    async fn attempt_on_endpoint(
        &self,
        method: &Method,
        path: &str,
        body: Option<&impl Serialize>,
        request_id: &RequestId,
        call: Call,
        tried: &mut Vec<Arc<Endpoint>>,
    ) -> Result<(StatusCode, Bytes), CallError> {
        let picked = match self.balancer.pick(tried) {
            Ok(picked) => picked,
            Err(rejected) => {
                self.metrics.call(self.name, "rejected", Duration::ZERO);
                return Err(rejected.into());
            }
        };
        let endpoint = picked.endpoint().clone();
        let started = Instant::now();
        let outcome = self
            .attempt(endpoint.url(), method, path, body, request_id, call)
            .await;
        let took = started.elapsed();
        self.report(method, path, &outcome, took);
        let label = outcome
            .as_ref()
            .err()
            .map_or("success", CallError::metric_outcome);
        self.balancer
            .finish(picked, took, CallError::verdict(&outcome), label);
        tried.push(endpoint);
        outcome
    }

    /// How long to wait before retrying after `error` on attempt number
    /// `attempt`; `None` when no retry is to be made: the wait would end
    /// past the deadline, or the budget has no retry left (counted).
    fn retry_wait(&self, error: &CallError, attempt: u32, call: Call) -> Option<Duration> {
        let config = &self.retries.config;
        let backoff = Backoff {
            base: config.base_delay,
            max: config.max_delay,
        };
        let delay = backoff.delay(attempt, &mut rand::rng());
        let left = call.deadline.remaining();
        let wait = next_delay(delay, error.asked_wait(), left, self.policy.margin)?;
        if !self.retries.budget.try_withdraw() {
            self.metrics.budget_exhausted(self.name);
            tracing::warn!(dependency = self.name, "retry budget spent: not retrying");
            return None;
        }
        Some(wait)
    }

    /// One attempt at a call, bounded by the smaller of the timeout and
    /// the time left; not made when less than the margin is left.
    async fn attempt(
        &self,
        base: &str,
        method: &Method,
        path: &str,
        body: Option<&impl Serialize>,
        request_id: &RequestId,
        call: Call,
    ) -> Result<(StatusCode, Bytes), CallError> {
        let left = call.deadline.remaining();
        if left <= self.policy.margin {
            return Err(CallError::DeadlineExceeded { sent: false });
        }
        let bound = Bound {
            timeout: self.policy.timeout.min(left),
            by_deadline: left < self.policy.timeout,
        };
        let url = format!("{base}{path}");
        self.call(method.clone(), &url, body, request_id, call, bound)
            .await
    }

    /// One exchange with this service's credentials: a token that cannot be
    /// had within the timeout fails the call unsent, and a 401 tells the
    /// credentials their token was refused.
    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&impl Serialize>,
        request_id: &RequestId,
        call: Call,
        bound: Bound,
    ) -> Result<(StatusCode, Bytes), CallError> {
        let bearer = tokio::time::timeout(bound.timeout, self.credentials.bearer())
            .await
            .map_err(|_| {
                let waited = bound.timeout;
                CallError::Credentials(format!(
                    "the token endpoint did not answer within {waited:?}"
                ))
            })??;
        let request = self
            .request(method, url, request_id, &bearer)
            .insert_header((
                deadline::HEADER,
                call.deadline.header_value(self.policy.margin),
            ));
        let outcome = self.exchange(request, body, bound).await;
        if let Err(CallError::Status { status, .. }) = &outcome
            && *status == StatusCode::UNAUTHORIZED
        {
            self.credentials.refused(&bearer);
        }
        outcome
    }

    /// The request, with the headers every call carries: the request id,
    /// the trace context, and the bearer token where one is configured.
    fn request(
        &self,
        method: Method,
        url: &str,
        request_id: &RequestId,
        bearer: &Bearer,
    ) -> awc::ClientRequest {
        let mut request = self
            .http
            .request(method, url)
            .insert_header((request_id::HEADER, request_id.as_str()));
        if let Some(authorization) = bearer.header() {
            request = request.insert_header((header::AUTHORIZATION, authorization));
        }
        for (name, value) in shared_http::telemetry::trace_headers() {
            request = request.insert_header((name, value));
        }
        request
    }

    /// Sends `request` and reads its answer, all of it within the timeout; a
    /// non-2xx answer is an error carrying its problem body.
    async fn exchange(
        &self,
        request: awc::ClientRequest,
        body: Option<&impl Serialize>,
        bound: Bound,
    ) -> Result<(StatusCode, Bytes), CallError> {
        let request = request.timeout(bound.timeout);
        let exchange = async {
            let sent = match body {
                Some(body) => request.send_json(body).await,
                None => request.send().await,
            };
            let mut response = sent.map_err(|e| match e {
                awc::error::SendRequestError::Timeout => bound.timed_out(),
                other => CallError::Transport(other.to_string()),
            })?;
            let bytes = response
                .body()
                .limit(MAX_ANSWER_BYTES)
                .await
                .map_err(|e| CallError::Transport(e.to_string()))?;
            let retry_after = crate::retry::retry_after(response.headers());
            Ok::<_, CallError>((response.status(), retry_after, bytes))
        };
        match tokio::time::timeout(bound.timeout, exchange).await {
            Err(_) => Err(bound.timed_out()),
            Ok(Err(e)) => Err(e),
            Ok(Ok((status, _, bytes))) if status.is_success() => Ok((status, bytes)),
            Ok(Ok((status, retry_after, bytes))) => {
                let problem: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                if status == StatusCode::GATEWAY_TIMEOUT && problem["code"] == deadline::EXCEEDED {
                    return Err(CallError::DeadlineExceeded { sent: true });
                }
                Err(CallError::Status {
                    status,
                    problem,
                    retry_after,
                })
            }
        }
    }

    /// Counts, times and logs one call that used the network.
    fn report(
        &self,
        method: &Method,
        path: &str,
        outcome: &Result<(StatusCode, Bytes), CallError>,
        took: Duration,
    ) {
        let label = outcome
            .as_ref()
            .err()
            .map_or("success", CallError::metric_outcome);
        self.metrics.call(self.name, label, took);
        let latency_ms = took.as_secs_f64() * 1000.0;
        match outcome {
            Ok((status, _)) => tracing::debug!(
                dependency = self.name, %method, path, status = status.as_u16(), latency_ms,
                "downstream call"
            ),
            Err(error) => tracing::warn!(
                dependency = self.name, %method, path, %error, latency_ms,
                "downstream call failed"
            ),
        }
    }

    /// [`Downstream::send`], then the body decoded as `T`.
    ///
    /// # Errors
    /// As [`Downstream::send`], and [`CallError::Decode`] for a body that is
    /// not a `T`.
    pub async fn send_for<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        request_id: &RequestId,
        call: Call,
    ) -> Result<(StatusCode, T), CallError> {
        let (status, bytes) = self.send(method, path, body, request_id, call).await?;
        let value = serde_json::from_slice(&bytes).map_err(|e| CallError::Decode(e.to_string()))?;
        Ok((status, value))
    }
}

/// How long one attempt may take, and whether the deadline set that.
#[derive(Clone, Copy, Debug)]
struct Bound {
    timeout: Duration,
    by_deadline: bool,
}

impl Bound {
    /// The error for an attempt that ran out of its time.
    fn timed_out(self) -> CallError {
        if self.by_deadline {
            CallError::DeadlineExceeded { sent: true }
        } else {
            CallError::Timeout(self.timeout)
        }
    }
}

/// `/health` entry for a dependency: is it reachable right now (a direct
/// probe of each endpoint's liveness endpoint, outside the breakers so that
/// probing never trips or heals them; up while one endpoint answers), what
/// does its breaker say, and each endpoint's state (`active`, `ejected`).
pub struct DependencyCheck(pub Downstream);

impl DependencyCheck {
    /// Probes `base`'s liveness endpoint: `None` when it is live, else why not.
    async fn probe(&self, base: &str) -> Option<String> {
        let probe = self
            .0
            .http
            .get(format!("{base}{}", shared_http::paths::LIVE))
            .timeout(PROBE_TIMEOUT)
            .send();
        match probe.await {
            Ok(res) if res.status().is_success() => None,
            Ok(res) => Some(format!("answered {}", res.status())),
            Err(e) => Some(e.to_string()),
        }
    }
}

impl HealthCheck for DependencyCheck {
    fn name(&self) -> &str {
        self.0.name
    }

    /// The order service degrades around its dependencies: not required.
    fn required(&self) -> bool {
        false
    }

    fn check(&self) -> LocalBoxFuture<'_, CheckOutcome> {
        async move {
            let downstream = &self.0;
            let started = Instant::now();
            let endpoints = downstream.balancer.views();
            let probes = endpoints.iter().map(|e| self.probe(&e.url));
            let failures = futures::future::join_all(probes).await;
            let mut outcome = if failures.iter().any(Option::is_none) {
                CheckOutcome::up()
            } else {
                let why = failures.into_iter().flatten().next();
                CheckOutcome::down(why.unwrap_or_else(|| "no endpoint".to_owned()))
            };
            outcome = outcome.with("url", downstream.base_url.clone()).with(
                "latency_ms",
                shared_http::timestamp::millis(started.elapsed()),
            );
            let breaker =
                serde_json::to_value(downstream.breaker.snapshot()).unwrap_or(Value::Null);
            let endpoints = serde_json::to_value(endpoints).unwrap_or(Value::Null);
            outcome
                .with("breaker", breaker)
                .with("endpoints", endpoints)
        }
        .boxed_local()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn answered(status: u16, problem: Value) -> CallError {
        CallError::Status {
            status: StatusCode::from_u16(status).expect("a status"),
            problem,
            retry_after: None,
        }
    }

    #[test]
    fn a_missing_route_is_told_from_a_missing_resource() {
        assert!(answered(404, json!({"code": "not_found"})).route_not_served());
        assert!(answered(404, Value::Null).route_not_served());
        assert!(answered(405, json!({"code": "method_not_allowed"})).route_not_served());
        assert!(!answered(404, json!({"code": "reservation_not_found"})).route_not_served());
        assert!(!answered(400, json!({"code": "not_found"})).route_not_served());
        assert!(!answered(503, json!({"code": "not_found"})).route_not_served());
        assert!(!CallError::Timeout(Duration::from_secs(1)).route_not_served());
    }
}
