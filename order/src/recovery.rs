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
//!
//! [`resolve`] is also what the `order-expiries` consumer does at once when
//! inventory says a reservation expired (see [`consumers`](crate::consumers)).

use std::time::Duration;

use shared_http::health::Lifecycle;
use shared_http::request_id::RequestId;
use shared_http::timestamp::{ms_ago, now_ms};

use crate::clients::InventoryClient;
use crate::domain::{OrderId, OrderStatus};
use crate::metrics::OrderMetrics;
use crate::store::{Handled, Store};

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
        let reason = "abandoned: the process placing it stopped";
        match resolve(store, inventory, metrics, &id, reason, None).await {
            Ok(Some(true)) => resolved += 1,
            Ok(_) => {}
            Err(Unresolved::Release(e)) => {
                tracing::warn!(order_id = %id, error = %e, "could not release an abandoned order yet");
            }
            Err(Unresolved::Store(e)) => return Err(e),
        }
    }
    Ok(resolved)
}

/// Why [`resolve`] left an order pending.
#[derive(Debug, thiserror::Error)]
pub enum Unresolved {
    #[error("releasing its stock failed: {0}")]
    Release(crate::clients::InventoryError),
    #[error(transparent)]
    Store(anyhow::Error),
}

/// Releases the stock of the pending order `id` (idempotent, whatever state
/// its reservation is in) and only then ends it `failed` with `reason`, with
/// `handled` (a consumer and an event id) recorded in the inbox in the same
/// transaction. `Some(whether it ended the order)`; `None` when the inbox
/// had the event already (nothing was done).
///
/// # Errors
/// When the release or the store fails: the order stays pending.
pub async fn resolve(
    store: &Store,
    inventory: &InventoryClient,
    metrics: &OrderMetrics,
    id: &OrderId,
    reason: &str,
    handled: Option<Handled<'_>>,
) -> Result<Option<bool>, Unresolved> {
    let request_id =
        RequestId::parse(&format!("recovery-{id}")).unwrap_or_else(RequestId::generate);
    inventory
        .release(&request_id, id)
        .await
        .map_err(Unresolved::Release)?;
    let ended = store
        .end_handling(id, OrderStatus::Failed, reason, now_ms(), handled)
        .await
        .map_err(Unresolved::Store)?;
    if ended == Some(true) {
        metrics.ended(OrderStatus::Failed);
        tracing::warn!(order_id = %id, reason, "resolved a pending order as failed");
    }
    Ok(ended)
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
    shared_http::periodic::every(
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
