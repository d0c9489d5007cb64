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
use shared::timestamp::now_ms;

use crate::clients::InventoryClient;
use crate::domain::OrderStatus;
use crate::store::Store;

/// Releases and fails every pending order older than `stale_after`; returns how many.
///
/// # Errors
/// On a database error. An order whose release fails stays pending for the next round.
pub async fn resolve_abandoned(
    store: &Store,
    inventory: &InventoryClient,
    stale_after: Duration,
) -> anyhow::Result<usize> {
    let before = now_ms() - stale_after.as_millis() as i64;
    let mut resolved = 0;
    for id in store.pending_before(before, 200).await? {
        let request_id =
            RequestId::parse(&format!("recovery-{id}")).unwrap_or_else(RequestId::generate);
        if let Err(e) = inventory.release(&request_id, &id).await {
            tracing::warn!(order_id = %id, error = %e, "could not release an abandoned order yet");
            continue;
        }
        store
            .fail(
                &id,
                OrderStatus::Failed,
                "abandoned: the process placing it stopped",
                now_ms(),
            )
            .await?;
        tracing::warn!(order_id = %id, "resolved an abandoned pending order as failed");
        resolved += 1;
    }
    Ok(resolved)
}

/// Runs [`resolve_abandoned`] now and then every `interval` until draining.
pub async fn run(
    store: Store,
    inventory: InventoryClient,
    stale_after: Duration,
    interval: Duration,
    lifecycle: Lifecycle,
) {
    let mut ticker = actix_web::rt::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !lifecycle.is_draining() {
        ticker.tick().await;
        if let Err(e) = resolve_abandoned(&store, &inventory, stale_after).await {
            tracing::warn!(error.cause_chain = %format_args!("{e:#}"), "resolving abandoned orders failed");
        }
    }
}
