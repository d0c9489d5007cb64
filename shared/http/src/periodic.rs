//! Background work that runs now and then every interval, until the service
//! starts draining: the one loop behind every periodic task (expiring
//! reservations, resolving abandoned orders).

use std::future::Future;
use std::time::Duration;

use crate::health::Lifecycle;

/// Runs `round` at once and then every `interval` until `lifecycle` starts
/// draining. A round that fails is logged as `what` and the loop goes on: the
/// next round tries again. A round that overruns delays the next one rather
/// than starting rounds back to back.
pub async fn every<F, Fut>(
    what: &'static str,
    interval: Duration,
    lifecycle: Lifecycle,
    mut round: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut ticker = actix_web::rt::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !lifecycle.is_draining() {
        ticker.tick().await;
        if let Err(e) = round().await {
            tracing::warn!(task = what, error.cause_chain = %format_args!("{e:#}"), "a periodic task failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    #[actix_web::test]
    async fn rounds_run_until_draining_and_survive_failures() {
        let lifecycle = Lifecycle::default();
        let rounds = Rc::new(Cell::new(0));
        let (counted, stopper) = (rounds.clone(), lifecycle.clone());
        every("test", Duration::from_millis(1), lifecycle, move || {
            let (counted, stopper) = (counted.clone(), stopper.clone());
            async move {
                counted.set(counted.get() + 1);
                if counted.get() == 3 {
                    stopper.start_draining();
                }
                anyhow::ensure!(counted.get() != 2, "the second round fails");
                Ok(())
            }
        })
        .await;
        assert_eq!(rounds.get(), 3);
    }
}
