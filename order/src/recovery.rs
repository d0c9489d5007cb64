//! Resolving orders that a dead process left `pending`.
//!
//! A process killed between reserving stock and recording the result leaves
//! its order `pending` and, at inventory, a reservation that will expire (or,
//! if it died after confirming, a confirmed one that never will). Once a
//! pending order is older than the reservation TTL, no live saga can still be
//! working on it: its reservation has expired, so a late confirm would fail.
//! This task, run at start-up and then periodically on every replica, releases
//! the reservation (idempotent, whatever state it is in) and only then marks
//! the order `failed`, so a failed order never holds stock. Every step is
//! conditional, so replicas racing on the same order do no harm.

use std::time::Duration;

use shared::health::Lifecycle;
use shared::request_id::RequestId;
use shared::timestamp::{ms_ago, now_ms};

use crate::clients::InventoryClient;
use crate::domain::OrderStatus;
use crate::metrics::OrderMetrics;
use crate::store::Store;

/// Most abandoned orders resolved in one round; the next round takes the rest.
const BATCH: u32 = 200;

/// Releases and fails every pending order older than `stale_after`; returns how many.
///
/// # Errors
/// On a database error. An order whose release fails stays pending for the next round.
pub async fn resolve_abandoned(
    store: &Store,
    inventory: &InventoryClient,
    metrics: &OrderMetrics,
    stale_after: Duration,
) -> anyhow::Result<usize> {
    let mut resolved = 0;
    for id in store.pending_before(ms_ago(stale_after), BATCH).await? {
        let request_id =
            RequestId::parse(&format!("recovery-{id}")).unwrap_or_else(RequestId::generate);
        if let Err(e) = inventory.release(&request_id, &id).await {
            tracing::warn!(order_id = %id, error = %e, "could not release an abandoned order yet");
            continue;
        }
        let reason = "abandoned: the process placing it stopped";
        if store
            .end(&id, OrderStatus::Failed, reason, now_ms())
            .await?
        {
            metrics.ended(OrderStatus::Failed);
            tracing::warn!(order_id = %id, "resolved an abandoned pending order as failed");
            resolved += 1;
        }
    }
    Ok(resolved)
}

/// Runs [`resolve_abandoned`] now and then every `interval` until draining.
pub async fn run(
    store: Store,
    inventory: InventoryClient,
    metrics: OrderMetrics,
    stale_after: Duration,
    interval: Duration,
    lifecycle: Lifecycle,
) {
    shared::periodic::every(
        "resolving abandoned orders",
        interval,
        lifecycle,
        || async {
            resolve_abandoned(&store, &inventory, &metrics, stale_after).await?;
            Ok(())
        },
    )
    .await;
}
