//! Retries that cannot turn into a retry storm.
//!
//! Three pieces, used together by a caller's retry loop:
//!
//! - [`RetryBudget`]: the Finagle / Linkerd / tower model. Every call first
//!   [`deposit`](RetryBudget::deposit)s; a retry may
//!   [`withdraw`](RetryBudget::try_withdraw) only while retries in the last
//!   `RETRY_BUDGET_WINDOW_MS` stay within `RETRY_BUDGET_PERCENT` % of the
//!   calls in it plus `RETRY_BUDGET_MIN_PER_SEC` per second of the window.
//!   When a dependency fails everything, the extra load retries add is thus
//!   bounded (20 % by default) instead of multiplying by the attempt count.
//! - [`Backoff`]: jittered exponential delays from `RETRY_BASE_DELAY_MS`,
//!   doubling up to `RETRY_MAX_DELAY_MS`, each drawn at random from the upper
//!   half of its step so that callers failed together do not retry together.
//! - [`next_delay`]: the wait before a retry, honouring the dependency's
//!   `Retry-After`, or no retry at all when the wait would end past the
//!   caller's deadline.
//!
//! The budget reads time from a [`Clock`], so tests move it by hand.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::header::{self, HeaderMap};
use rand::Rng;

use crate::breaker::Clock;
use shared_config::ConfigError;
use shared_config::Env;

/// How many times, how soon, and how much retrying is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// Attempts per call, the first included (`RETRY_MAX_ATTEMPTS`; 1 = no retries).
    pub max_attempts: u32,
    /// The first retry's delay (`RETRY_BASE_DELAY_MS`).
    pub base_delay: Duration,
    /// The longest delay (`RETRY_MAX_DELAY_MS`).
    pub max_delay: Duration,
    /// Retries allowed per 100 calls (`RETRY_BUDGET_PERCENT`).
    pub budget_percent: u32,
    /// Retries allowed per second on top (`RETRY_BUDGET_MIN_PER_SEC`).
    pub budget_min_per_sec: u32,
    /// The window the budget counts over (`RETRY_BUDGET_WINDOW_MS`).
    pub budget_window: Duration,
}

impl Default for RetryConfig {
    /// The documented defaults.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            budget_percent: 20,
            budget_min_per_sec: 10,
            budget_window: Duration::from_millis(10_000),
        }
    }
}

impl RetryConfig {
    /// No retries at all.
    pub fn off() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The `RETRY_*` variables.
    ///
    /// # Errors
    /// When a variable is invalid, or `RETRY_MAX_DELAY_MS` is below `RETRY_BASE_DELAY_MS`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let config = Self {
            max_attempts: env.at_least_as("RETRY_MAX_ATTEMPTS", 3, 1)?,
            base_delay: env.millis("RETRY_BASE_DELAY_MS", 20, 1)?,
            max_delay: env.millis("RETRY_MAX_DELAY_MS", 200, 1)?,
            budget_percent: env.at_least_as("RETRY_BUDGET_PERCENT", 20, 0)?,
            budget_min_per_sec: env.at_least_as("RETRY_BUDGET_MIN_PER_SEC", 10, 0)?,
            budget_window: env.millis("RETRY_BUDGET_WINDOW_MS", 10_000, 1000)?,
        };
        if config.max_delay < config.base_delay {
            return Err(ConfigError {
                name: "RETRY_MAX_DELAY_MS".into(),
                value: config.max_delay.as_millis().to_string(),
                reason: "must be at least RETRY_BASE_DELAY_MS".into(),
            });
        }
        if config.budget_percent > 1000 {
            return Err(ConfigError {
                name: "RETRY_BUDGET_PERCENT".into(),
                value: config.budget_percent.to_string(),
                reason: "must be at most 1000".into(),
            });
        }
        Ok(config)
    }
}

/// Jittered exponential backoff.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay before retry number `retry` (1 for the first): the step
    /// `base × 2^(retry-1)`, capped at `max`, drawn at random from its upper
    /// half (never below `base`).
    pub fn delay(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let step = self.base.saturating_mul(factor).min(self.max);
        let low = (step / 2).max(self.base).min(step);
        if low >= step {
            return step;
        }
        rng.random_range(low..=step)
    }
}

/// The wait before a retry: the backoff's `delay`, or the dependency's
/// `Retry-After` when that is longer. `None` (no retry) when the wait plus
/// `margin` would not end before `left` runs out.
pub fn next_delay(
    delay: Duration,
    retry_after: Option<Duration>,
    left: Duration,
    margin: Duration,
) -> Option<Duration> {
    let wait = retry_after.map_or(delay, |after| after.max(delay));
    (wait.saturating_add(margin) < left).then_some(wait)
}

/// `Retry-After` in delta-seconds (an HTTP date is not honoured: no
/// dependency of ours sends one).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// How many slots the window is cut into: the budget forgets a slot at a time.
const SLOTS: u32 = 10;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Which slot-length period since the budget started this slot counts.
    period: u64,
    calls: u64,
    retries: u64,
}

/// A retry budget over a sliding window; share it with an `Arc`.
pub struct RetryBudget {
    percent: u64,
    /// Retries the window allows with no calls at all, in hundredths.
    reserve_hundredths: u64,
    slot_len: Duration,
    clock: Arc<dyn Clock>,
    started: Instant,
    slots: Mutex<[Slot; SLOTS as usize]>,
}

impl RetryBudget {
    pub fn new(config: &RetryConfig, clock: Arc<dyn Clock>) -> Self {
        let window_ms = u64::try_from(config.budget_window.as_millis()).unwrap_or(u64::MAX);
        // min_per_sec × window in seconds, × 100.
        let reserve_hundredths =
            u64::from(config.budget_min_per_sec).saturating_mul(window_ms) / 10;
        Self {
            percent: u64::from(config.budget_percent),
            reserve_hundredths,
            slot_len: (config.budget_window / SLOTS).max(Duration::from_millis(1)),
            started: clock.now(),
            clock,
            slots: Mutex::new([Slot::default(); SLOTS as usize]),
        }
    }

    /// Which slot-length period since the budget started `now` falls in.
    fn period(&self) -> u64 {
        let elapsed = self.clock.now().saturating_duration_since(self.started);
        let nanos = elapsed.as_nanos() / self.slot_len.as_nanos().max(1);
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }

    /// Runs `f` on the slots, the current period's emptied first if it
    /// still held an older period.
    fn with_slots<T>(&self, f: impl FnOnce(u64, &mut [Slot; SLOTS as usize]) -> T) -> T {
        let period = self.period();
        // A few integer updates under the lock, no await: a std mutex is right.
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let at = usize::try_from(period % u64::from(SLOTS)).unwrap_or(0);
        if slots[at].period != period {
            slots[at] = Slot {
                period,
                ..Slot::default()
            };
        }
        f(period, &mut slots)
    }

    /// Counts one call (not a retry): it adds `percent`/100 of a retry.
    pub fn deposit(&self) {
        self.with_slots(|period, slots| {
            let at = usize::try_from(period % u64::from(SLOTS)).unwrap_or(0);
            slots[at].calls += 1;
        });
    }

    /// Takes one retry from the budget; `false` when it is spent.
    pub fn try_withdraw(&self) -> bool {
        self.with_slots(|period, slots| {
            let live = slots
                .iter()
                .filter(|s| period.saturating_sub(s.period) < u64::from(SLOTS));
            let (calls, retries) =
                live.fold((0u64, 0u64), |(c, r), s| (c + s.calls, r + s.retries));
            let allowed = self
                .reserve_hundredths
                .saturating_add(calls.saturating_mul(self.percent));
            if retries.saturating_add(1).saturating_mul(100) > allowed {
                return false;
            }
            let at = usize::try_from(period % u64::from(SLOTS)).unwrap_or(0);
            slots[at].retries += 1;
            true
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::ManualClock;

    fn budget(percent: u32, min_per_sec: u32, clock: &ManualClock) -> RetryBudget {
        let config = RetryConfig {
            budget_percent: percent,
            budget_min_per_sec: min_per_sec,
            ..RetryConfig::default()
        };
        RetryBudget::new(&config, Arc::new(clock.clone()))
    }

    #[test]
    fn retries_are_a_share_of_calls() {
        let clock = ManualClock::default();
        let budget = budget(20, 0, &clock);
        assert!(!budget.try_withdraw(), "no calls, no reserve: no retry");
        for _ in 0..10 {
            budget.deposit();
        }
        // 10 calls × 20 % = 2 retries.
        assert!(budget.try_withdraw());
        assert!(budget.try_withdraw());
        assert!(!budget.try_withdraw());
        for _ in 0..5 {
            budget.deposit();
        }
        assert!(budget.try_withdraw(), "5 more calls: one more retry");
        assert!(!budget.try_withdraw());
    }

    #[test]
    fn the_reserve_allows_retries_per_second_of_the_window() {
        let clock = ManualClock::default();
        // 1 per second over a 10 s window: 10 retries without any calls.
        let budget = budget(0, 1, &clock);
        for _ in 0..10 {
            assert!(budget.try_withdraw());
        }
        assert!(!budget.try_withdraw());
    }

    #[test]
    fn the_window_forgets_old_calls_and_retries() {
        let clock = ManualClock::default();
        let budget = budget(50, 0, &clock);
        for _ in 0..4 {
            budget.deposit();
        }
        assert!(budget.try_withdraw());
        assert!(budget.try_withdraw());
        assert!(!budget.try_withdraw());
        // Half a window on, the same calls and retries still count.
        clock.advance(Duration::from_secs(5));
        assert!(!budget.try_withdraw());
        // A whole window on, they are forgotten: nothing left, nothing spent.
        clock.advance(Duration::from_secs(6));
        assert!(!budget.try_withdraw());
        budget.deposit();
        budget.deposit();
        assert!(budget.try_withdraw(), "fresh calls fund a retry again");
    }

    #[test]
    fn backoff_grows_with_jitter_within_its_bounds() {
        let backoff = Backoff {
            base: Duration::from_millis(20),
            max: Duration::from_millis(200),
        };
        let mut rng = rand::rng();
        assert_eq!(backoff.delay(1, &mut rng), Duration::from_millis(20));
        for _ in 0..200 {
            let second = backoff.delay(2, &mut rng);
            assert!((Duration::from_millis(20)..=Duration::from_millis(40)).contains(&second));
            let fourth = backoff.delay(4, &mut rng);
            assert!((Duration::from_millis(80)..=Duration::from_millis(160)).contains(&fourth));
            let late = backoff.delay(40, &mut rng);
            assert!((Duration::from_millis(100)..=Duration::from_millis(200)).contains(&late));
        }
    }

    #[test]
    fn a_retry_waits_for_retry_after_but_never_past_the_deadline() {
        let ms = Duration::from_millis;
        let margin = ms(20);
        assert_eq!(next_delay(ms(30), None, ms(1000), margin), Some(ms(30)));
        assert_eq!(
            next_delay(ms(30), Some(ms(500)), ms(1000), margin),
            Some(ms(500))
        );
        assert_eq!(next_delay(ms(30), Some(ms(1000)), ms(1000), margin), None);
        assert_eq!(next_delay(ms(30), None, ms(40), margin), None);
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, "2".parse().expect("value"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(header::RETRY_AFTER, "soon".parse().expect("value"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn settings_are_read_and_checked() {
        let config = RetryConfig::from_env(&Env::from_pairs([])).expect("defaults");
        assert_eq!(config, RetryConfig::default());
        for (name, value) in [
            ("RETRY_MAX_ATTEMPTS", "0"),
            ("RETRY_BASE_DELAY_MS", "x"),
            ("RETRY_MAX_DELAY_MS", "10"),
            ("RETRY_BUDGET_PERCENT", "-1"),
            ("RETRY_BUDGET_MIN_PER_SEC", "1.5"),
            ("RETRY_BUDGET_WINDOW_MS", "10"),
        ] {
            let err = RetryConfig::from_env(&Env::from_pairs([(name, value)])).expect_err(name);
            assert_eq!(err.name, name);
        }
    }
}
