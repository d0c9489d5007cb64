//! The per-account sign-in throttle: a few guesses, then one more per
//! interval. Always on.
//!
//! Keyed by the normalised email whether or not an account has it, so that
//! being throttled says nothing about whether the account exists.
//!
//! An attempt is *taken before the password is checked*, atomically (one
//! lock around look and spend): however many guesses for one email arrive at
//! once, at most `burst` of them are ever checked in a window, and the rest
//! are answered 429 before any hashing. A successful sign-in gives its
//! attempt back, so the owner signing in spends nothing; so does an attempt
//! that was never checked (the hashing pool was busy). A failed one stays
//! spent. (A keyed governor limiter, used before, cannot give a cell back,
//! which is why the bucket is kept here: a GCRA, one instant per email.)
//!
//! Once `burst` attempts are spent the email is *locked* until the next one
//! comes back, one per `interval`; while locked every attempt, right password
//! or not, is answered 429 unchecked (so a locked account also costs no CPU).
//!
//! Worst case for the real owner: an attacker who keeps guessing gets
//! `burst` guesses, then one per `interval`; the owner is locked out while the
//! attack lasts (apart from the moment an attempt comes back, which the
//! attacker and the owner race for), and **at most one `interval` after the
//! attacker's last attempt** the owner can sign in again: refused attempts
//! spend nothing, so they cannot push the lock further out. With the defaults
//! (5, 12 s) that is 5 guesses a minute at most, and 12 s of lock-out after an
//! attack stops.
//!
//! Memory: one instant per email that failed recently. Every
//! [`SWEEP_INTERVAL`] the entries whose allowance is whole again are dropped
//! (`retain_recent`).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::Email;

/// How often forgotten entries are dropped.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// The throttle's settings (`IDENTITY_SIGNIN_FAILURE_BURST`, `IDENTITY_SIGNIN_FAILURE_INTERVAL_S`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Attempts allowed in a row before the lock.
    pub burst: NonZeroU32,
    /// One more attempt is allowed per interval after that.
    pub interval: Duration,
}

/// Shared by all workers.
pub struct SignInThrottle {
    interval: Duration,
    /// How far ahead of "now" the allowance may run: `(burst - 1) * interval`.
    tolerance: Duration,
    /// Per email, the GCRA's theoretical arrival time: the allowance is whole
    /// when it is in the past, and each attempt taken pushes it one interval on.
    next_free: Mutex<HashMap<Email, Instant>>,
}

/// One attempt taken from an email's allowance. Dropped, it stays spent;
/// [`Attempt::give_back`] returns it (a success, or a guess never checked).
#[must_use = "an attempt is given back on success, spent otherwise"]
pub struct Attempt<'a> {
    throttle: &'a SignInThrottle,
    email: Email,
}

impl SignInThrottle {
    /// # Errors
    /// When the interval is zero.
    pub fn new(settings: ThrottleSettings) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !settings.interval.is_zero(),
            "the sign-in interval must be above zero"
        );
        Ok(Self {
            interval: settings.interval,
            tolerance: settings.interval * (settings.burst.get() - 1),
            next_free: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one of `email`'s attempts, or says how long it is locked.
    ///
    /// # Errors
    /// With the time until an attempt comes back, when none is left.
    pub fn try_attempt(&self, email: &Email) -> Result<Attempt<'_>, Duration> {
        let now = Instant::now();
        let mut map = self.map();
        let tat = map.get(email).map_or(now, |t| (*t).max(now));
        let ahead = tat - now;
        if ahead > self.tolerance {
            return Err(ahead - self.tolerance);
        }
        map.insert(email.clone(), tat + self.interval);
        Ok(Attempt {
            throttle: self,
            email: email.clone(),
        })
    }

    /// How long `email` is locked now, if it is.
    fn locked_for(&self, email: &Email) -> Option<Duration> {
        let now = Instant::now();
        let ahead = self.map().get(email)?.saturating_duration_since(now);
        ahead.checked_sub(self.tolerance).filter(|d| !d.is_zero())
    }

    fn give_back(&self, email: &Email) {
        let mut map = self.map();
        if let Some(tat) = map.get_mut(email) {
            match tat.checked_sub(self.interval) {
                Some(earlier) => *tat = earlier,
                None => {
                    map.remove(email);
                }
            }
        }
    }

    /// Drops the emails whose allowance is whole again.
    pub fn retain_recent(&self) {
        let now = Instant::now();
        let mut map = self.map();
        map.retain(|_, tat| *tat > now);
        map.shrink_to_fit();
    }

    /// How many emails the throttle holds state for (for the memory bound's test).
    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Email, Instant>> {
        // The map stays consistent whatever panicked while holding it: every
        // change is one insert, assignment or removal.
        self.next_free.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Attempt<'_> {
    /// The attempt did not count against the email: it succeeded, or the
    /// password was never checked.
    pub fn give_back(self) {
        self.throttle.give_back(&self.email);
    }

    /// The attempt failed and stays spent; returns how long the email is now
    /// locked, when this was its last attempt.
    pub fn spend(self) -> Option<Duration> {
        self.throttle.locked_for(&self.email)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(s: &str) -> Email {
        Email::parse(s).expect("valid")
    }

    fn throttle(burst: u32) -> SignInThrottle {
        SignInThrottle::new(ThrottleSettings {
            burst: NonZeroU32::new(burst).expect("non-zero"),
            interval: Duration::from_secs(600),
        })
        .expect("throttle")
    }

    #[test]
    fn burst_failures_then_locked_until_an_attempt_returns() {
        let throttle = throttle(3);
        let ada = email("ada@example.com");
        for _ in 0..2 {
            let attempt = throttle.try_attempt(&ada).expect("an attempt");
            assert_eq!(attempt.spend(), None);
        }
        let wait = throttle
            .try_attempt(&ada)
            .expect("the third attempt")
            .spend()
            .expect("the third failure locks");
        assert!(
            wait > Duration::from_secs(590) && wait <= Duration::from_secs(600),
            "{wait:?}"
        );
        let left = throttle.try_attempt(&ada).err().expect("locked");
        assert!(left <= wait);
        // Another email is not affected, and retaining keeps the lock.
        assert!(throttle.try_attempt(&email("bob@example.com")).is_ok());
        throttle.retain_recent();
        assert!(throttle.try_attempt(&ada).is_err());
    }

    #[test]
    fn attempts_in_flight_count_before_they_fail() {
        let throttle = throttle(2);
        let ada = email("ada@example.com");
        // Two guesses being checked at once hold the whole allowance: a third
        // arriving meanwhile is refused, whatever the first two turn out to be.
        let first = throttle.try_attempt(&ada).expect("first");
        let second = throttle.try_attempt(&ada).expect("second");
        assert!(throttle.try_attempt(&ada).is_err());
        // A success gives its attempt back.
        first.give_back();
        let third = throttle.try_attempt(&ada).expect("given back");
        drop((second, third));
        assert!(throttle.try_attempt(&ada).is_err(), "dropped = spent");
    }

    #[test]
    fn successes_spend_nothing_and_whole_allowances_are_forgotten() {
        let throttle = throttle(1);
        let ada = email("ada@example.com");
        for _ in 0..5 {
            throttle.try_attempt(&ada).expect("an attempt").give_back();
        }
        throttle.retain_recent();
        assert!(throttle.is_empty());
    }
}
