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
//!
//! An inventory older than the batch confirm answers it 404: the orders of
//! that call are then confirmed one at a time, each with its own request id
//! and deadline, and so are the next calls' for a while (see
//! [`ConfirmRoute`]).

use std::num::NonZeroUsize;
use std::sync::Arc;

use futures::future::join_all;

use shared_http::problem::RETRY_SOON;
use shared_http::request_id::RequestId;
use shared_resilience::batch::{Batcher, Limits};
use tracing::Instrument;

use super::confirm_route::{ConfirmRoute, RECHECK_AFTER};
use super::inventory::BatchConfirm;
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

/// What each batch is confirmed with.
#[derive(Clone)]
struct Confirmer {
    client: InventoryClient,
    metrics: OrderMetrics,
    route: Arc<ConfirmRoute>,
}

impl Confirmations {
    /// Starts the worker's batcher, which calls inventory through `client`,
    /// counts each call's orders in `metrics`, and shares what it learns of
    /// inventory's batch confirm in `route` (one for the whole process).
    pub fn start(client: InventoryClient, metrics: OrderMetrics, route: Arc<ConfirmRoute>) -> Self {
        let confirmer = Confirmer {
            client,
            metrics,
            route,
        };
        Self(Batcher::start(LIMITS, move |batch: Vec<Waiting>| {
            confirmer.clone().confirm(batch)
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

impl Confirmer {
    /// Confirms a batch, in one call while inventory serves that, else one
    /// order at a time; answers each order for itself, in the batch's order.
    async fn confirm(self, batch: Vec<Waiting>) -> Vec<Result<(), InventoryError>> {
        if self.route.batch_worth_trying() {
            if let Some(answers) = self.confirm_together(&batch).await {
                return answers;
            }
            self.route.batch_not_served();
        }
        self.confirm_each(&batch).await
    }

    /// Confirms the batch in one call; `None` when inventory does not serve
    /// the batch confirm (nothing was confirmed then).
    async fn confirm_together(&self, batch: &[Waiting]) -> Option<Vec<Result<(), InventoryError>>> {
        let Some(first) = batch.first() else {
            return Some(Vec::new());
        };
        // As long as its most patient order may wait.
        let call = batch
            .iter()
            .map(|w| w.call)
            .max_by_key(|call| call.deadline())
            .unwrap_or(first.call);
        let ids: Vec<&OrderId> = batch.iter().map(|w| &w.order_id).collect();
        let answer = self
            .client
            .confirm_all(&first.request_id, &ids, call)
            .instrument(first.span.clone())
            .await;
        let answer = match answer {
            Ok(BatchConfirm::NotServed) => {
                tracing::warn!(
                    parent: &first.span,
                    recheck_after_s = RECHECK_AFTER.as_secs(),
                    "inventory does not serve POST /reservation-confirmations (an older \
                     release): confirming one reservation at a time for a while"
                );
                return None;
            }
            Ok(BatchConfirm::Answered(confirmed)) => Ok(confirmed),
            Err(e) => Err(e),
        };
        self.metrics.confirm_batch(batch.len());
        for other in &batch[1..] {
            other
                .span
                .record("confirmed_with", first.request_id.as_str());
        }
        Some(
            batch
                .iter()
                .map(|w| match &answer {
                    Ok(confirmed) => confirmed.outcome(&w.order_id),
                    Err(e) => Err(e.clone()),
                })
                .collect(),
        )
    }

    /// Confirms each order of the batch with a call of its own (its request
    /// id, trace and deadline), all at once.
    async fn confirm_each(&self, batch: &[Waiting]) -> Vec<Result<(), InventoryError>> {
        let confirms = batch.iter().map(|w| {
            self.metrics.single_confirm();
            self.client
                .confirm(&w.request_id, &w.order_id, w.call)
                .instrument(w.span.clone())
        });
        join_all(confirms).await
    }
}
