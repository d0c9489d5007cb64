//! The per-account sign-in throttle: a few failed passwords, then one more
//! per interval. Always on.
//!
//! Keyed by the normalised email whether or not an account has it, so that
//! being throttled says nothing about whether the account exists. Only failed
//! attempts spend a cell (governor's keyed GCRA, `burst` cells refilled one
//! per `interval`); a successful sign-in spends nothing. Once the failures have
//! emptied the bucket the email is *locked* until the next cell comes back,
//! and while locked every attempt, right password or not, is answered 429
//! before any hashing (so a locked account also costs no CPU).
//!
//! Worst case for the real owner: an attacker who keeps guessing gets
//! `burst` guesses, then one per `interval`; the owner is locked out while the
//! attack lasts (apart from the moment a cell comes back, which the attacker
//! and the owner race for), and **at most one `interval` after the attacker's
//! last attempt** the owner can sign in again: attempts made while locked spend
//! nothing, so they cannot push the lock further out. With the defaults (5,
//! 12 s) that is 5 guesses a minute at most, and 12 s of lock-out after an
//! attack stops.
//!
//! Memory: one small entry per email that failed recently. Every
//! [`SWEEP_INTERVAL`] the entries whose bucket is full again, and the locks
//! that ended, are dropped (`retain_recent`).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::domain::Email;

/// How often forgotten entries are dropped.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// The throttle's settings (`IDENTITY_SIGNIN_FAILURE_BURST`, `IDENTITY_SIGNIN_FAILURE_INTERVAL_S`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failed attempts allowed in a row before the lock.
    pub burst: NonZeroU32,
    /// One more failed attempt is allowed per interval after that.
    pub interval: Duration,
}

type Limiter =
    RateLimiter<Email, DefaultKeyedStateStore<Email>, DefaultClock, StateInformationMiddleware>;

/// Shared by all workers.
pub struct SignInThrottle {
    failures: Limiter,
    /// When each locked email may try again. A lookup here is the check made
    /// before verifying: governor has no way to look without spending a cell.
    locked_until: Mutex<HashMap<Email, Instant>>,
}

impl SignInThrottle {
    /// # Errors
    /// When the interval is zero.
    pub fn new(settings: ThrottleSettings) -> anyhow::Result<Self> {
        let quota = Quota::with_period(settings.interval)
            .ok_or_else(|| anyhow::anyhow!("the sign-in interval must be above zero"))?
            .allow_burst(settings.burst);
        Ok(Self {
            failures: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            locked_until: Mutex::new(HashMap::new()),
        })
    }

    /// Before verifying: `Err(wait)` while `email` is locked.
    ///
    /// # Errors
    /// With how long the lock lasts.
    pub fn check(&self, email: &Email) -> Result<(), Duration> {
        let now = Instant::now();
        match self.locks().get(email) {
            Some(until) if *until > now => Err(*until - now),
            _ => Ok(()),
        }
    }

    /// After a failed attempt: spends a cell; when that empties the bucket,
    /// locks `email` until the next cell and returns how long that is.
    pub fn record_failure(&self, email: &Email) -> Option<Duration> {
        let now = Instant::now();
        let wait = match self.failures.check_key(email) {
            Ok(snapshot) if snapshot.remaining_burst_capacity() > 0 => return None,
            // The last cell is spent: a second look is refused without
            // spending anything, and says when the next cell comes.
            Ok(_) => match self.failures.check_key(email) {
                Err(not_until) => not_until.wait_time_from(self.failures.clock().now()),
                Ok(_) => return None,
            },
            Err(not_until) => not_until.wait_time_from(self.failures.clock().now()),
        };
        self.locks().insert(email.clone(), now + wait);
        Some(wait)
    }

    /// Drops what no longer matters: full buckets and ended locks.
    pub fn retain_recent(&self) {
        self.failures.retain_recent();
        self.failures.shrink_to_fit();
        let now = Instant::now();
        self.locks().retain(|_, until| *until > now);
    }

    /// How many emails the throttle holds state for (for the memory bound's test).
    pub fn len(&self) -> usize {
        self.failures.len()
    }

    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }

    fn locks(&self) -> std::sync::MutexGuard<'_, HashMap<Email, Instant>> {
        // The map stays consistent whatever panicked while holding it.
        self.locked_until.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(s: &str) -> Email {
        Email::parse(s).expect("valid")
    }

    #[test]
    fn burst_failures_then_locked_until_a_cell_returns() {
        let throttle = SignInThrottle::new(ThrottleSettings {
            burst: NonZeroU32::new(3).expect("non-zero"),
            interval: Duration::from_secs(600),
        })
        .expect("throttle");
        let ada = email("ada@example.com");
        for _ in 0..2 {
            assert_eq!(throttle.check(&ada), Ok(()));
            assert_eq!(throttle.record_failure(&ada), None);
        }
        assert_eq!(throttle.check(&ada), Ok(()));
        let wait = throttle
            .record_failure(&ada)
            .expect("the third failure locks");
        assert!(
            wait > Duration::from_secs(590) && wait <= Duration::from_secs(600),
            "{wait:?}"
        );
        let left = throttle.check(&ada).expect_err("locked");
        assert!(left <= wait);
        // Another email is not affected, and retaining keeps the lock.
        assert_eq!(throttle.check(&email("bob@example.com")), Ok(()));
        throttle.retain_recent();
        assert!(throttle.check(&ada).is_err());
        assert_eq!(throttle.len(), 1);
    }
}
