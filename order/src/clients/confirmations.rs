//! The confirm step of the orders placed at the same moment, sent to
//! inventory as one call.
//!
//! Every order confirms its reservation before it is answered 201, as the
//! contract's saga says; but when many orders reach that step together, one
//! `POST /reservation-confirmations` confirms them all, through the same
//! breaker, bulkhead and retries as any call. A worker keeps at most
//! two such calls ([`LIMITS`]) going at once, and the orders that arrive while
//! they are busy leave together in the next ([`shared_resilience::batch`]): an order
//! alone still goes at once, so a quiet shop pays no wait for this.
//!
//! The call takes the request id and the trace of the order that opened the
//! batch; every other order of the batch records that request id on its own
//! span (`confirmed_with`, on its log lines from then on, "order placed"
//! among them), so that inventory's log lines for it can be found. The
//! call carries the latest deadline of its orders, and each order stops
//! waiting at its own: an order out of time is answered 504 and releases its
//! stock like any other (a confirm that lands after the release finds the
//! reservation released and keeps nothing).

use std::num::NonZeroUsize;

use shared_http::problem::RETRY_SOON;
use shared_http::request_id::RequestId;
use shared_resilience::batch::{Batcher, Limits};
use tracing::Instrument;

use super::inventory::MAX_CONFIRMED_AT_ONCE;
use super::{Call, CallError, InventoryClient, InventoryError};
use crate::domain::OrderId;
use crate::metrics::OrderMetrics;

/// How many orders one call confirms at most (inventory's limit), and how
/// many such calls a worker keeps in flight at once.
const LIMITS: Limits = Limits {
    max_items: NonZeroUsize::new(MAX_CONFIRMED_AT_ONCE).expect("inventory takes some"),
    in_flight: NonZeroUsize::new(2).expect("not zero"),
};

/// One order waiting for its confirm.
struct Waiting {
    order_id: OrderId,
    request_id: RequestId,
    call: Call,
    /// The order's span: the batch's trace, or where `confirmed_with` goes.
    span: tracing::Span,
}

/// A worker's confirmations; see the module documentation.
pub struct Confirmations(Batcher<Waiting, Result<(), InventoryError>>);

impl Confirmations {
    /// Starts the worker's batcher, which calls inventory through `client`
    /// and counts each call's orders in `metrics`.
    pub fn start(client: InventoryClient, metrics: OrderMetrics) -> Self {
        Self(Batcher::start(LIMITS, move |batch: Vec<Waiting>| {
            metrics.confirm_batch(batch.len());
            confirm_batch(client.clone(), batch)
        }))
    }

    /// Keeps the order's reserved stock for good. Idempotent.
    ///
    /// # Errors
    /// See [`InventoryError`]: [`InventoryError::Expired`] when it is too
    /// late, [`InventoryError::DeadlineExceeded`] when the order's deadline
    /// passes first.
    pub async fn confirm(
        &self,
        request_id: &RequestId,
        order_id: &OrderId,
        call: Call,
    ) -> Result<(), InventoryError> {
        let waiting = Waiting {
            order_id: order_id.clone(),
            request_id: request_id.clone(),
            call,
            span: tracing::Span::current(),
        };
        let answer = self.0.submit(waiting);
        match tokio::time::timeout(call.deadline().remaining(), answer).await {
            Ok(Some(answer)) => answer,
            // The worker is stopping: whether the confirm landed is unknown.
            Ok(None) => Err(InventoryError::Unavailable {
                retry_after: RETRY_SOON,
                may_have_landed: true,
                cause: CallError::Transport("the worker stopped before inventory answered".into()),
            }),
            Err(_) => Err(InventoryError::DeadlineExceeded {
                may_have_landed: true,
            }),
        }
    }
}

/// Confirms a batch in one call and answers each order for itself.
async fn confirm_batch(
    client: InventoryClient,
    batch: Vec<Waiting>,
) -> Vec<Result<(), InventoryError>> {
    let Some(first) = batch.first() else {
        return Vec::new();
    };
    for other in &batch[1..] {
        other
            .span
            .record("confirmed_with", first.request_id.as_str());
    }
    // As long as its most patient order may wait.
    let call = batch
        .iter()
        .map(|w| w.call)
        .max_by_key(|call| call.deadline())
        .unwrap_or(first.call);
    let ids: Vec<&OrderId> = batch.iter().map(|w| &w.order_id).collect();
    let answer = client
        .confirm_all(&first.request_id, &ids, call)
        .instrument(first.span.clone())
        .await;
    batch
        .iter()
        .map(|w| match &answer {
            Ok(confirmed) => confirmed.outcome(&w.order_id),
            Err(e) => Err(e.clone()),
        })
        .collect()
}
