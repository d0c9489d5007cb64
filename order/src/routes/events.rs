//! `GET /events/stream` (the shop's events as Server-Sent Events) and the
//! dead letters of order's consumers (`GET /admin/dead-letters`,
//! `POST /admin/dead-letters/{sequence}/replay`, `orders:admin`).

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::HeaderName;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use shared_auth::{AuthError, Authorized, Caller, TokenError};
use shared_events::Broker;
use shared_events::consumer::{Consumers, Effect};
use shared_events::dead_letters::{DeadLetter, ReplayError};
use shared_events::feed::{BadLastEventId, Feed, LastEventId, Listen, Refused};
use shared_http::openapi::PROBLEM_JSON;
use shared_http::problem::ProblemDetails;
use shared_rate_limit::RateLimits;
use utoipa::{IntoParams, ToSchema};

use crate::error::Error;
use crate::scopes::{Audience, OrdersAdmin};

/// The header of the last event a reconnecting listener saw (SSE).
const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// Most dead letters listed at once, and how many when the query says nothing.
const MAX_DEAD_LETTERS: u32 = 200;
const DEFAULT_DEAD_LETTERS: u32 = 50;

/// What the events routes need (they exist only with events on), shared by
/// every worker; the feed is set once the service has started.
pub struct EventsState {
    broker: Broker,
    consumers: Consumers,
    feed: OnceLock<Feed>,
    /// Tokens are verified: a listener without one is shown public forms.
    tokens_on: bool,
}

impl EventsState {
    pub fn new(broker: Broker, consumers: Consumers, tokens_on: bool) -> Self {
        Self {
            broker,
            consumers,
            feed: OnceLock::new(),
            tokens_on,
        }
    }

    /// Starts serving the feed (once; a second feed is ignored).
    pub fn set_feed(&self, feed: Feed) {
        let _ = self.feed.set(feed);
    }

    /// The feed, once the service has started (a request in the moment
    /// before is told to come back).
    fn feed(&self) -> Result<&Feed, Error> {
        self.feed
            .get()
            .ok_or_else(|| Error::EventsUnavailable(anyhow::anyhow!("the live feed is starting")))
    }
}

/// The shop's events (order, inventory, pricing) as they happen.
///
/// With access control on, order events are shown as the orders themselves
/// are: a customer's token sees its own, `orders:admin` all. Everything else
/// is shown in its public form, and so is everything to a listener without a
/// token: catalogue events without who made the change or a reservation's
/// id, and no order events.
///
/// Each event is one frame: `event:` its type, `id:` its id, `data:` the
/// CloudEvent (JSON, one line). Comment lines keep an idle connection open.
/// A listener that sends `Last-Event-ID` first gets the later events the
/// streams still hold, then the live ones, without a gap or a repeat (a
/// comment says so when the id is not held any more, or too many were
/// missed: events may have been skipped). A stream opened with a token ends when the token expires:
/// the listener reconnects with a fresh one (and `Last-Event-ID`). One
/// caller (token subject, else address) holds at most
/// `EVENTS_STREAMS_PER_CALLER` streams at once.
#[utoipa::path(
    tag = "events",
    params(("Last-Event-ID" = Option<String>, Header, max_length = 64,
        pattern = "^[A-Za-z0-9._:-]*$",
        description = "The id of the last event seen: the later ones the streams still hold come first.")),
    responses(
        (status = 200, description = "The stream, until the listener leaves or its token expires.",
            body = String, content_type = "text/event-stream",
            example = "event: shop.order.confirmed\nid: 0193a4a4-7f3c-7c1e-9d2a-5b1f3e2d4c6b\ndata: {\"specversion\":\"1.0\",...}\n\n"),
        (status = 400, description = "`invalid_request`: `Last-Event-ID` is not of an event id's shape.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 401, description = "`unauthorized`: the token is not valid (expired included).",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 429, description = "`too_many_streams`: this caller holds as many streams as one \
            may (`Retry-After`).",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 503, description = "`too_many_listeners`: the feed has as many listeners as it \
            takes (`Retry-After`); `events_unavailable`: the service is starting (`Retry-After`).",
            body = ProblemDetails, content_type = PROBLEM_JSON),
    )
)]
#[get("/events/stream")]
pub async fn event_stream(
    req: HttpRequest,
    caller: Caller,
    state: web::Data<EventsState>,
) -> Result<HttpResponse, Error> {
    let feed = state.feed()?;
    let last_event_id = last_event_id(&req)?;
    let ends_at = stream_end(&caller)?;
    // Registered by every service's server; a caller not told apart is
    // counted in the feed's total only.
    let key = req
        .app_data::<web::Data<RateLimits>>()
        .and_then(|limits| limits.caller_of(&req));
    let admission = feed.admit(key).map_err(|refused| match refused {
        Refused::Full => Error::FeedFull,
        Refused::CallerFull => Error::TooManyStreams,
    })?;
    let audience = Audience::of(&caller, state.tokens_on);
    Ok(feed.respond(Listen {
        admission,
        view: Box::new(move |event| audience.shows(event)),
        last_event_id,
        ends_at,
    }))
}

/// When a stream opened by `caller` ends: its token's expiry (`None`: no
/// token, no end).
///
/// # Errors
/// 401 when the token has expired already (the verifier allows for clock
/// skew; a stream would end as it began).
fn stream_end(caller: &Caller) -> Result<Option<SystemTime>, Error> {
    let Some(exp) = caller.expires_at() else {
        return Ok(None);
    };
    let ends_at = UNIX_EPOCH + Duration::from_secs(exp);
    if ends_at <= SystemTime::now() {
        return Err(AuthError::Invalid(TokenError::Expired).into());
    }
    Ok(Some(ends_at))
}

/// The `Last-Event-ID` header (`None`: absent or empty).
///
/// # Errors
/// 400 when it is not of an event id's shape (too long, other characters).
fn last_event_id(req: &HttpRequest) -> Result<Option<LastEventId>, Error> {
    let Some(value) = req.headers().get(LAST_EVENT_ID) else {
        return Ok(None);
    };
    let bad = |e: BadLastEventId| Error::InvalidRequest(e.to_string());
    let value = value.to_str().map_err(|_| bad(BadLastEventId))?.trim();
    if value.is_empty() {
        return Ok(None);
    }
    LastEventId::parse(value).map(Some).map_err(bad)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterQuery {
    /// Only dead letters after this sequence (the last one of the page before).
    #[param(value_type = i64, required = false, minimum = 0, example = 0)]
    after: Option<i64>,
    /// At most this many (1 to 200, default 50; values outside are brought into range).
    #[param(value_type = i64, required = false, minimum = 0, maximum = 4_294_967_295_i64, example = 50)]
    limit: Option<u32>,
}

/// Dead letters of order's consumers, oldest first.
#[derive(Serialize, ToSchema)]
pub struct DeadLetterList {
    count: usize,
    dead_letters: Vec<DeadLetter>,
}

/// The events order's consumers failed on every delivery.
#[utoipa::path(
    tag = "events",
    security(("bearer_token" = [])),
    params(DeadLetterQuery),
    responses(
        (status = 200, description = "A page of dead letters, oldest first.", body = DeadLetterList),
        (status = 401, description = "`unauthorized`: no valid bearer token where one is needed.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 403, description = "`forbidden`: the token lacks `orders:admin`.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 503, description = "`events_unavailable`: the events broker cannot be reached.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
    )
)]
#[get("/admin/dead-letters")]
pub async fn list_dead_letters(
    _: Authorized<OrdersAdmin>,
    state: web::Data<EventsState>,
    query: web::Query<DeadLetterQuery>,
) -> Result<HttpResponse, Error> {
    let broker = &state.broker;
    let after = u64::try_from(query.after.unwrap_or(0))
        .map_err(|_| Error::InvalidRequest("`after` is a sequence: 0 or more".into()))?;
    let limit = query
        .limit
        .unwrap_or(DEFAULT_DEAD_LETTERS)
        .clamp(1, MAX_DEAD_LETTERS);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let dead_letters = state
        .consumers
        .list_dead_letters(broker, after, limit)
        .await
        .map_err(Error::EventsUnavailable)?;
    Ok(HttpResponse::Ok().json(DeadLetterList {
        count: dead_letters.len(),
        dead_letters,
    }))
}

/// What a replay did.
#[derive(Serialize, ToSchema)]
pub struct Replayed {
    sequence: u64,
    /// `applied`, or `already_handled` when the event's effect had been
    /// committed before (the inbox had it).
    #[schema(example = "applied")]
    outcome: &'static str,
}

/// Hands a dead letter to its consumer again (once its cause is fixed); once
/// handled it leaves the dead letters.
#[utoipa::path(
    tag = "events",
    security(("bearer_token" = [])),
    params(("sequence" = u64, Path, minimum = 1, description = "The dead letter's `sequence`.", example = 1)),
    responses(
        (status = 200, description = "Handled and removed from the dead letters.", body = Replayed),
        (status = 401, description = "`unauthorized`: no valid bearer token where one is needed.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 403, description = "`forbidden`: the token lacks `orders:admin`.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 404, description = "`dead_letter_not_found`: no dead letter of order's consumers has this sequence.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 422, description = "`replay_failed`: the consumer failed on it again; it stays a dead letter.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 503, description = "`events_unavailable`: the events broker cannot be reached.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
    )
)]
#[post("/admin/dead-letters/{sequence}/replay")]
pub async fn replay_dead_letter(
    _: Authorized<OrdersAdmin>,
    state: web::Data<EventsState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let broker = &state.broker;
    let raw = path.into_inner();
    // Text that is not a sequence names no dead letter.
    let sequence = raw
        .parse::<u64>()
        .map_err(|_| Error::DeadLetterNotFound(raw.clone()))?;
    let effect = state
        .consumers
        .replay(broker, sequence)
        .await
        .map_err(|e| match e {
            ReplayError::NotFound(_) | ReplayError::UnknownConsumer(_) => {
                Error::DeadLetterNotFound(raw.clone())
            }
            ReplayError::FailedAgain(cause) => Error::ReplayFailed(cause),
            ReplayError::Broker(e) => Error::EventsUnavailable(e),
        })?;
    let outcome = match effect {
        Effect::Applied => "applied",
        Effect::AlreadyHandled => "already_handled",
    };
    Ok(HttpResponse::Ok().json(Replayed { sequence, outcome }))
}
