//! The order flow, one step at a time.
//!
//! ```text
//! record pending ─▶ reserve stock ─▶ fetch prices ─▶ confirm stock ─▶ record confirmed
//!                        │ 409/422: rejected          │ (fallback:      │ fails: release,
//!                        │ down: failed + 503         │  last seen)     │ failed + 503
//! ```
//!
//! Invariants: an order never ends `confirmed` (or `pending_pricing`) without
//! confirmed stock, and stock is never held by an order that failed: every
//! failure after the reservation releases it, and if this process dies
//! before it can, the reservation expires at inventory.

use std::collections::HashMap;

use shared::request_id::RequestId;
use shared::timestamp::now_ms;

use crate::clients::{CallError, InventoryClient, PricingClient};
use crate::domain::{
    IdempotencyKey, NewOrder, Order, OrderStatus, PricingSource, UnitPrice, price_lines,
};
use crate::error::Error;
use crate::metrics::OrderMetrics;
use crate::store::{Recorded, Store};

/// What the saga needs, borrowed from the worker's app data.
pub struct Saga<'a> {
    pub store: &'a Store,
    pub inventory: &'a InventoryClient,
    pub pricing: &'a PricingClient,
    pub metrics: &'a OrderMetrics,
    pub request_id: &'a RequestId,
}

/// A placed order, and whether this request placed it or replayed it.
pub enum Placed {
    Created(Order),
    Replayed(Order),
}

impl Saga<'_> {
    /// Places an order, or returns the one placed first under `key`.
    ///
    /// # Errors
    /// Rejections (stock, sku), inventory unavailability, idempotency
    /// conflicts and store failures; see [`Error`].
    #[tracing::instrument(skip_all, fields(order_id))]
    pub async fn place(
        &self,
        order: NewOrder,
        key: Option<IdempotencyKey>,
    ) -> Result<Placed, Error> {
        let id = uuid::Uuid::now_v7().to_string();
        tracing::Span::current().record("order_id", id.as_str());
        let created_at = now_ms();
        match self
            .store
            .record_pending(&id, &order, key.as_ref(), created_at)
            .await?
        {
            Recorded::New => {}
            Recorded::Existing(first) => return replay(first, &order),
        }

        let reservation = match self
            .inventory
            .reserve(self.request_id, &id, &order.lines)
            .await
        {
            Ok(r) if r.holds_stock() => r,
            Ok(r) => {
                let reason = format!("reservation came back {}", r.status);
                return Err(self.fail(&id, OrderStatus::Failed, reason, None).await);
            }
            Err(e) => return Err(self.reservation_failed(&id, e).await),
        };
        let names: HashMap<String, String> = reservation
            .items
            .into_iter()
            .map(|i| (i.sku, i.name))
            .collect();

        let (source, prices) = match self.prices(&order).await {
            Ok(found) => found,
            Err(e) => {
                self.release(&id).await;
                self.mark(&id, OrderStatus::Failed, "no prices could be read")
                    .await;
                return Err(e);
            }
        };
        let priced = price_lines(&order.lines, &names, &prices);

        if let Err(e) = self.inventory.confirm(self.request_id, &id).await {
            let reason = format!("confirming the reservation failed: {e}");
            let retry_after = e.retry_after();
            return Err(self
                .fail(&id, OrderStatus::Failed, reason, Some(retry_after))
                .await);
        }

        let status = if priced.is_complete() {
            OrderStatus::Confirmed
        } else {
            OrderStatus::PendingPricing
        };
        let live = if source == PricingSource::Live {
            prices
        } else {
            HashMap::new()
        };
        let placed = Order {
            customer_id: order.customer_id.as_str().to_owned(),
            status,
            pricing: Some(source),
            currency: priced.currency,
            total: priced.total,
            lines: priced.lines,
            fingerprint: order.fingerprint(),
            failure_reason: None,
            created_at,
            updated_at: now_ms(),
            id,
        };
        match self.store.complete(&placed, &live).await {
            Ok(()) => {
                tracing::info!(
                    status = status.as_str(),
                    pricing = source.as_str(),
                    "order placed"
                );
                Ok(Placed::Created(placed))
            }
            Err(e) => {
                // Stock is confirmed but the order could not say so: give it back.
                self.release(&placed.id).await;
                Err(Error::Unexpected(e.context("recording the placed order")))
            }
        }
    }

    /// Live prices, or the last ones seen when pricing cannot answer.
    async fn prices(
        &self,
        order: &NewOrder,
    ) -> Result<(PricingSource, HashMap<String, UnitPrice>), Error> {
        match self.pricing.quote(self.request_id, &order.lines).await {
            Ok(quotes) => {
                let prices = quotes
                    .into_iter()
                    .map(|q| {
                        let price = UnitPrice {
                            unit: q.final_price,
                            discount_percent: q.discount_percent,
                            currency: q.currency,
                        };
                        (q.sku, price)
                    })
                    .collect();
                Ok((PricingSource::Live, prices))
            }
            Err(e) => {
                tracing::warn!(error = %e, "pricing unavailable; using last-seen prices");
                let skus: Vec<&str> = order.lines.iter().map(|(s, _)| s.as_str()).collect();
                match self.store.last_prices(&skus).await {
                    Ok(prices) => Ok((PricingSource::Fallback, prices)),
                    Err(e) => Err(Error::Unexpected(e.context("reading last-seen prices"))),
                }
            }
        }
    }

    /// Maps a failed reservation call to the order's end and the caller's error.
    async fn reservation_failed(&self, id: &str, e: CallError) -> Error {
        match e.client_error() {
            Some((_, "insufficient_stock")) => {
                let skus = e.problem_list("skus");
                self.reject(id, "insufficient stock").await;
                Error::InsufficientStock { skus }
            }
            Some((_, "unknown_sku")) => {
                let skus = e.problem_list("skus");
                self.reject(id, "unknown sku").await;
                Error::UnknownSku { skus }
            }
            Some((status, code)) => {
                let reason = format!("inventory answered {status} {code}");
                self.mark(id, OrderStatus::Failed, &reason).await;
                Error::InventoryRefused { reason }
            }
            None => {
                let reason = format!("reserving stock failed: {e}");
                let retry_after = e.retry_after();
                if e.may_have_landed() {
                    self.fail(id, OrderStatus::Failed, reason, Some(retry_after))
                        .await
                } else {
                    self.mark(id, OrderStatus::Failed, &reason).await;
                    Error::InventoryUnavailable {
                        reason,
                        retry_after,
                    }
                }
            }
        }
    }

    async fn reject(&self, id: &str, reason: &str) {
        self.mark(id, OrderStatus::Rejected, reason).await;
    }

    /// Releases whatever may be held, ends the order as `status`, and returns
    /// the error for the caller.
    async fn fail(
        &self,
        id: &str,
        status: OrderStatus,
        reason: String,
        retry_after: Option<std::time::Duration>,
    ) -> Error {
        self.release(id).await;
        self.mark(id, status, &reason).await;
        Error::InventoryUnavailable {
            reason,
            retry_after: retry_after.unwrap_or(std::time::Duration::from_secs(1)),
        }
    }

    /// Best effort: if this fails too, the reservation expires at inventory.
    async fn release(&self, id: &str) {
        if let Err(e) = self.inventory.release(self.request_id, id).await {
            tracing::warn!(error = %e, order_id = id, "release failed; the reservation will expire");
        }
    }

    /// Best effort: an order left `pending` is resolved by the next start-up.
    async fn mark(&self, id: &str, status: OrderStatus, reason: &str) {
        if let Err(e) = self.store.fail(id, status, reason, now_ms()).await {
            tracing::error!(error.cause_chain = %format_args!("{e:#}"), order_id = id, "could not record the order's end");
        }
    }

    /// Cancels an order that holds stock, releasing the stock first.
    ///
    /// # Errors
    /// Unknown order, an order that holds nothing, inventory unavailable.
    pub async fn cancel(&self, id: &str) -> Result<Order, Error> {
        let order = self
            .store
            .get(id)
            .await?
            .ok_or_else(|| Error::OrderNotFound { id: id.to_owned() })?;
        if order.status == OrderStatus::Cancelled {
            return Ok(order);
        }
        if !order.status.holds_stock() {
            return Err(Error::NotCancellable {
                id: id.to_owned(),
                status: order.status,
            });
        }
        self.inventory
            .release(self.request_id, id)
            .await
            .map_err(|e| Error::InventoryUnavailable {
                reason: format!("releasing the stock failed: {e}"),
                retry_after: e.retry_after(),
            })?;
        self.store.cancel(id, now_ms()).await?;
        tracing::info!(order_id = id, "order cancelled; stock released");
        self.store
            .get(id)
            .await?
            .ok_or_else(|| Error::OrderNotFound { id: id.to_owned() })
    }
}

/// The answer to a repeated Idempotency-Key.
fn replay(first: Order, request: &NewOrder) -> Result<Placed, Error> {
    if first.fingerprint != request.fingerprint() {
        return Err(Error::IdempotencyKeyReused { order_id: first.id });
    }
    if first.status == OrderStatus::Pending {
        return Err(Error::OrderInProgress { order_id: first.id });
    }
    Ok(Placed::Replayed(first))
}
