//! Whether inventory serves the batch confirm, as last seen.
//!
//! Orders are confirmed with `POST /reservation-confirmations`, which
//! inventory serves from the release that brought it on. While inventory
//! is rolled out (or back) some of its replicas may run the release before,
//! which answers that path 404 `not_found`; the orders of such a call are
//! then confirmed one at a time with `POST /reservations/{id}/confirm`,
//! which every release serves. That answer is remembered for
//! [`RECHECK_AFTER`], by every worker of the process, so that orders do not
//! each pay a call that cannot work; after that the batch is asked again,
//! since inventory may have been upgraded meanwhile.
//!
//! It is one memory for the whole dependency, not one per replica: one old
//! replica sends every order to the per-reservation confirm for a while,
//! which every replica serves, old and new. Only the cost of the call
//! changes, never an outcome.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use shared_resilience::breaker::Clock;

/// How long order confirms one reservation at a time after inventory
/// answered that it does not serve the batch confirm. Long enough that a
/// busy shop makes few useless calls (one per period, not one per order),
/// short enough that the batch is back soon after a rollout ends (a rollout
/// of a few replicas takes minutes).
pub const RECHECK_AFTER: Duration = Duration::from_secs(5 * 60);

/// See the module documentation; shared by the workers.
pub struct ConfirmRoute {
    clock: Arc<dyn Clock>,
    /// When inventory last answered that it does not serve the batch confirm.
    not_served_at: Mutex<Option<Instant>>,
}

impl ConfirmRoute {
    /// Nothing known yet: the batch confirm is tried first. The period is
    /// measured on `clock` (tests move a manual one).
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            not_served_at: Mutex::new(None),
        }
    }

    /// Whether to ask for the batch confirm now: never refused, or refused
    /// at least [`RECHECK_AFTER`] ago.
    pub fn batch_worth_trying(&self) -> bool {
        let not_served_at = *self.lock();
        not_served_at
            .is_none_or(|at| self.clock.now().saturating_duration_since(at) >= RECHECK_AFTER)
    }

    /// Inventory just answered that it does not serve the batch confirm.
    pub fn batch_not_served(&self) {
        *self.lock() = Some(self.clock.now());
    }

    /// A poisoned lock still holds a valid instant: nothing is left half-set.
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.not_served_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use shared_resilience::breaker::ManualClock;

    use super::*;

    #[test]
    fn the_batch_is_asked_again_once_the_period_is_over() {
        let clock = ManualClock::default();
        let route = ConfirmRoute::new(Arc::new(clock.clone()));
        assert!(route.batch_worth_trying(), "tried until refused");
        route.batch_not_served();
        assert!(!route.batch_worth_trying());
        clock.advance(RECHECK_AFTER - Duration::from_millis(1));
        assert!(!route.batch_worth_trying(), "still within the period");
        clock.advance(Duration::from_millis(1));
        assert!(route.batch_worth_trying(), "asked again after the period");
        route.batch_not_served();
        assert!(
            !route.batch_worth_trying(),
            "a new refusal starts a new period"
        );
    }
}
