//! Request deadlines: `X-Request-Timeout-Ms`, read on the way in and honoured.
//!
//! A caller that will stop waiting after some time says so with
//! `X-Request-Timeout-Ms: <whole milliseconds left>`. Two middlewares, wired
//! by `shared_server`, act on it:
//!
//! - [`stamp`] runs early, when the request arrives: it turns the header into
//!   a [`Deadline`] (an instant on the monotonic clock) kept in the request's
//!   extensions. A value that is not a whole number of milliseconds (negative,
//!   fractional, text, empty) is answered 400 `invalid_request_timeout`: a
//!   caller that meant to set a deadline learns that it did not, instead of
//!   finding out through work done for nobody.
//! - [`enforce`] runs last, just before the handler (and after fault
//!   injection's delay): a request whose deadline has passed is answered 504
//!   `deadline_exceeded` and its handler never starts.
//!
//! Handlers read the deadline through the [`RequestDeadline`] extractor, check
//! it again just before a write that must not happen late, and pass what is
//! left on to their own calls ([`Deadline::header_value`]). The plumbing's
//! paths ([`paths::is_plumbing`]) are left alone: probes carry no deadlines.

use std::future::{Ready, ready};
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest};

use crate::paths;
use crate::problem::Problem;

/// The header that carries the time left, in whole milliseconds.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-timeout-ms");

/// The `code` of the 504 answered when a deadline has passed.
pub const EXCEEDED: &str = "deadline_exceeded";

/// The `code` of the 400 answered for a header that is not a number of milliseconds.
pub const INVALID: &str = "invalid_request_timeout";

/// The instant after which nobody waits for the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(Instant);

/// An `X-Request-Timeout-Ms` value that is not a whole number of milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("X-Request-Timeout-Ms must be a whole number of milliseconds, not {0:?}")]
pub struct InvalidTimeout(String);

impl Deadline {
    /// The deadline at `instant`.
    pub fn at(instant: Instant) -> Self {
        Self(instant)
    }

    /// The deadline `budget` from now (far in the future when that overflows).
    pub fn after(budget: Duration) -> Self {
        Self::after_from(Instant::now(), budget)
    }

    fn after_from(now: Instant, budget: Duration) -> Self {
        // A budget too large for the clock is as good as none: a year will do.
        const FAR: Duration = Duration::from_secs(365 * 24 * 3600);
        Self(now.checked_add(budget).unwrap_or(now + FAR))
    }

    /// The header's value, as a deadline from `now`.
    ///
    /// # Errors
    /// When `raw` is not a whole number of milliseconds (digits only).
    pub fn parse(raw: &str, now: Instant) -> Result<Self, InvalidTimeout> {
        let invalid = || InvalidTimeout(raw.chars().take(32).collect());
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        // Digits only: the one failure left is a number beyond u64, which is
        // as good as no deadline at all.
        let ms = raw.parse::<u64>().unwrap_or(u64::MAX);
        Ok(Self::after_from(now, Duration::from_millis(ms)))
    }

    /// The instant itself.
    pub fn instant(self) -> Instant {
        self.0
    }

    /// The time left (zero once passed).
    pub fn remaining(self) -> Duration {
        self.remaining_at(Instant::now())
    }

    /// The time left at `now`.
    pub fn remaining_at(self, now: Instant) -> Duration {
        self.0.saturating_duration_since(now)
    }

    /// Whether the deadline has passed.
    pub fn expired(self) -> bool {
        self.remaining().is_zero()
    }

    /// The deadline `reserve` before this one (for a step that must leave
    /// time for those after it); already passed when the reserve is larger
    /// than what the clock can go back.
    #[must_use]
    pub fn earlier_by(self, reserve: Duration) -> Self {
        Self(
            self.0
                .checked_sub(reserve)
                .unwrap_or_else(Instant::now)
                .min(self.0),
        )
    }

    /// The earlier of this deadline and `other`.
    #[must_use]
    pub fn min(self, other: Option<Deadline>) -> Self {
        other.map_or(self, |other| Ord::min(self, other))
    }

    /// The value to send onward: the whole milliseconds left less `margin`
    /// (the time the answer takes to come back), never below 0.
    pub fn header_value(self, margin: Duration) -> HeaderValue {
        HeaderValue::from(self.millis_to_send(margin, Instant::now()))
    }

    fn millis_to_send(self, margin: Duration, now: Instant) -> u64 {
        let left = self.remaining_at(now).saturating_sub(margin);
        u64::try_from(left.as_millis()).unwrap_or(u64::MAX)
    }
}

/// The deadline of the request being served, if its caller sent one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestDeadline(pub Option<Deadline>);

impl RequestDeadline {
    /// Whether the caller's deadline has passed (never, without one).
    pub fn expired(self) -> bool {
        self.0.is_some_and(Deadline::expired)
    }
}

impl FromRequest for RequestDeadline {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self(req.extensions().get::<Deadline>().copied())))
    }
}

/// 504 `deadline_exceeded`: the caller's deadline passed before the work
/// could start, so none was done.
pub fn exceeded() -> Problem {
    Problem::new(
        StatusCode::GATEWAY_TIMEOUT,
        EXCEEDED,
        "Deadline exceeded",
    )
    .detail("The request's deadline (X-Request-Timeout-Ms) passed before the work could be done; nothing was changed.")
}

fn invalid(e: &InvalidTimeout) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, INVALID, "Invalid request timeout").detail(e.to_string())
}

/// Reads `X-Request-Timeout-Ms` when the request arrives; see the module docs.
///
/// # Errors
/// Passes on the inner service's error unchanged.
pub async fn stamp(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> actix_web::Result<ServiceResponse<EitherBody<impl MessageBody>>> {
    let now = Instant::now();
    let header = req.headers().get(HEADER).map(HeaderValue::to_str);
    if let Some(raw) = header.filter(|_| !paths::is_plumbing(req.path())) {
        let parsed = raw
            .map_err(|_| InvalidTimeout("(not text)".into()))
            .and_then(|raw| Deadline::parse(raw.trim(), now));
        match parsed {
            Ok(deadline) => {
                req.extensions_mut().insert(deadline);
            }
            Err(e) => {
                let response = invalid(&e).to_response();
                return Ok(req.into_response(response).map_into_right_body());
            }
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// Answers 504 instead of starting a handler whose deadline has passed; see
/// the module docs.
///
/// # Errors
/// Passes on the inner service's error unchanged.
pub async fn enforce(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> actix_web::Result<ServiceResponse<EitherBody<impl MessageBody>>> {
    let expired = req
        .extensions()
        .get::<Deadline>()
        .is_some_and(|d| d.expired());
    if expired {
        tracing::info!("deadline passed before the handler started: not served");
        let response = exceeded().to_response();
        return Ok(req.into_response(response).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_milliseconds_are_accepted_and_the_rest_refused() {
        let now = Instant::now();
        for (raw, ms) in [("0", 0), ("1", 1), ("2500", 2500), ("007", 7)] {
            let deadline = Deadline::parse(raw, now).expect(raw);
            assert_eq!(
                deadline.remaining_at(now),
                Duration::from_millis(ms),
                "{raw}"
            );
        }
        let huge = Deadline::parse("99999999999999999999999", now).expect("huge");
        assert!(huge.remaining_at(now) > Duration::from_secs(3600));
        for bad in ["", "-1", "1.5", "+5", "ten", " 5", "5ms", "１"] {
            assert!(Deadline::parse(bad, now).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn what_is_sent_onward_is_what_is_left_less_the_margin() {
        let now = Instant::now();
        let deadline = Deadline::at(now + Duration::from_millis(300));
        let margin = Duration::from_millis(20);
        assert_eq!(deadline.millis_to_send(margin, now), 280);
        assert_eq!(
            deadline.millis_to_send(margin, now + Duration::from_millis(290)),
            0
        );
        assert_eq!(
            deadline.millis_to_send(margin, now + Duration::from_secs(1)),
            0
        );
        assert_eq!(
            deadline.remaining_at(now + Duration::from_secs(1)),
            Duration::ZERO
        );
    }

    #[test]
    fn the_earlier_deadline_wins() {
        let now = Instant::now();
        let soon = Deadline::at(now + Duration::from_millis(10));
        let later = Deadline::at(now + Duration::from_secs(10));
        assert_eq!(later.min(Some(soon)), soon);
        assert_eq!(soon.min(Some(later)), soon);
        assert_eq!(later.min(None), later);
        assert!(!RequestDeadline(None).expired());
        assert!(RequestDeadline(Some(Deadline::at(now))).expired());
    }

    #[test]
    fn a_deadline_earlier_by_a_reserve_leaves_that_reserve() {
        let now = Instant::now();
        let deadline = Deadline::at(now + Duration::from_millis(5000));
        let earlier = deadline.earlier_by(Duration::from_millis(2000));
        assert_eq!(earlier.remaining_at(now), Duration::from_millis(3000));
        let gone = deadline.earlier_by(Duration::from_millis(9000));
        assert!(gone.remaining_at(now).is_zero());
    }
}
