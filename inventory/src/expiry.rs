//! The background task that gives back the stock of reservations nobody
//! confirmed in time.
//!
//! Every replica runs one; they cannot double-count because each expiry is a
//! conditional update (`WHERE status = 'reserved'`) that only one wins.

use std::time::Duration;

use shared_http::health::Lifecycle;
use shared_http::timestamp::now_ms;

use crate::metrics::InventoryMetrics;
use crate::store::Store;

/// How often to look for due reservations: often enough that stock returns
/// within about half a TTL, never busier than every 20 ms, at least every second.
pub fn sweep_interval(ttl: Duration) -> Duration {
    (ttl / 2).clamp(BUSIEST_SWEEP, LAZIEST_SWEEP)
}

/// The shortest pause between sweeps, for very short TTLs (tests, demos).
const BUSIEST_SWEEP: Duration = Duration::from_millis(20);
/// The longest pause between sweeps: stock comes back within a second of expiring.
const LAZIEST_SWEEP: Duration = Duration::from_secs(1);

/// Runs until the service starts draining.
pub async fn run(
    store: Store,
    interval: Duration,
    lifecycle: Lifecycle,
    metrics: InventoryMetrics,
) {
    shared_http::periodic::every("expiring reservations", interval, lifecycle, || async {
        let expired = store.expire_due(now_ms()).await?;
        if expired > 0 {
            metrics.expired(expired);
            tracing::info!(expired, "expired reservations; stock returned");
        }
        Ok(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_follows_the_ttl_within_bounds() {
        assert_eq!(
            sweep_interval(Duration::from_secs(60)),
            Duration::from_secs(1)
        );
        assert_eq!(
            sweep_interval(Duration::from_millis(500)),
            Duration::from_millis(250)
        );
        assert_eq!(
            sweep_interval(Duration::from_millis(1)),
            Duration::from_millis(20)
        );
    }
}
