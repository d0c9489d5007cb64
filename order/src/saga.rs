//! The order flow, one step at a time.
//!
//! ```text
//! record pending ─▶ reserve stock ─▶ fetch prices ─▶ confirm stock ─▶ record confirmed
//!                        │ 409/422: rejected          │ (fallback:      │ fails: release,
//!                        │ down: failed + 503         │  last seen)     │ failed + 503
//! ```
//!
//! Every order has a deadline: `ORDER_DEADLINE_MS` from when it arrived, or
//! the caller's `X-Request-Timeout-Ms` when that is sooner. Each call carries
//! what is left; when it runs out at any step the order ends `failed` the way
//! a dependency's timeout ends it (whatever may be held is released, on the
//! release's own budget) and the caller gets 504 `deadline_exceeded`.
//!
//! [`Saga::place`] is that diagram, one call per box; each step that can go
//! wrong ends the order itself ([`Saga::end`]) and hands back the caller's
//! error, so `place` only says what comes next.
//!
//! Invariants: an order never ends `confirmed` (or `pending_pricing`) without
//! confirmed stock, and stock is never held by an order that failed: every
//! failure after the reservation releases it, and if this process dies
//! before it can, the reservation expires at inventory.

use std::collections::HashMap;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures::future::{Ready, ready};
use shared_http::deadline::{Deadline, RequestDeadline};
use shared_http::problem::RETRY_SOON;
use shared_http::request_id::RequestId;
use shared_http::timestamp::now_ms;
use shared_resilience::bulkhead::Bulkhead;

use crate::clients::{Call, Confirmations, InventoryClient, InventoryError, PricingClient};
use crate::domain::{
    IdempotencyKey, NewOrder, Order, OrderId, OrderStatus, PricingSource, Sku, UnitPrice,
    price_lines,
};
use crate::error::Error;
use crate::metrics::OrderMetrics;
use crate::scopes::Access;
use crate::store::{Recorded, Store};

/// What the saga needs: the worker's store, clients and metrics, and the
/// request's id. An extractor, so that a handler takes one `Saga` argument.
pub struct Saga {
    store: web::Data<Store>,
    inventory: web::Data<InventoryClient>,
    confirmations: web::Data<Confirmations>,
    pricing: web::Data<PricingClient>,
    metrics: web::Data<OrderMetrics>,
    request_id: RequestId,
    /// The order's deadline, carried by every call the order makes.
    call: Call,
    limits: web::Data<OrderLimits>,
}

/// The order flow's limits, registered once by `startup` as app data.
#[derive(Debug, Clone)]
pub struct OrderLimits {
    /// An order's whole budget (`ORDER_DEADLINE_MS`).
    pub deadline: std::time::Duration,
    /// Orders being placed at once (`ORDERS_MAX_IN_FLIGHT`), shared by the workers.
    pub in_flight: Bulkhead,
    /// The time the price quote leaves for the confirm after it: one call's
    /// timeout (`REQUEST_TIMEOUT_MS`), at most half of `deadline`.
    pub confirm_reserve: std::time::Duration,
}

/// One piece of app data, registered by `startup` on every worker.
fn app_data<T: 'static>(req: &HttpRequest) -> Result<web::Data<T>, actix_web::Error> {
    req.app_data::<web::Data<T>>().cloned().ok_or_else(|| {
        let missing = std::any::type_name::<T>();
        actix_web::error::ErrorInternalServerError(format!("{missing} is not registered"))
    })
}

impl FromRequest for Saga {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let mut saga = || {
            let limits = app_data::<OrderLimits>(req)?;
            let caller = RequestDeadline::from_request(req, payload).into_inner()?;
            let deadline = Deadline::after(limits.deadline).min(caller.0);
            Ok(Self {
                store: app_data(req)?,
                inventory: app_data(req)?,
                confirmations: app_data(req)?,
                pricing: app_data(req)?,
                metrics: app_data(req)?,
                request_id: RequestId::from_request(req, payload).into_inner()?,
                call: Call::within(deadline),
                limits,
            })
        };
        ready(saga())
    }
}

/// A placed order, and whether this request placed it or replayed it.
pub enum Placed {
    Created(Order),
    Replayed(Order),
}

/// Prices for an order's skus, and where they came from.
struct Prices {
    source: PricingSource,
    by_sku: HashMap<Sku, UnitPrice>,
    /// When pricing was asked: a price change committed after this may be
    /// newer than the quote, so its event must win over it.
    asked_at: i64,
}

impl Saga {
    /// Places an order, or returns the one placed first under `key`.
    ///
    /// # Errors
    /// Rejections (stock, sku), inventory unavailability, idempotency
    /// conflicts and store failures; see [`Error`].
    // `confirmed_with`: the request id of the call that confirmed this order
    // with others (see `crate::clients::Confirmations`).
    #[tracing::instrument(skip_all, fields(order_id, confirmed_with))]
    pub async fn place(
        &self,
        order: NewOrder,
        key: Option<IdempotencyKey>,
    ) -> Result<Placed, Error> {
        // Refused before anything is recorded; held until the order is placed.
        let _slot = self
            .limits
            .in_flight
            .try_acquire()
            .map_err(|_| Error::TooManyOrders)?;
        let id = OrderId::generate();
        tracing::Span::current().record("order_id", id.as_str());
        let created_at = now_ms();
        let recorded = self
            .store
            .record_pending(&id, &order, key.as_ref(), created_at)
            .await?;
        if let Recorded::Existing(first) = recorded {
            return replay(first, &order);
        }
        let names = self.reserve(&id, &order).await?;
        let prices = self.prices(&id, &order).await?;
        self.confirm(&id).await?;
        let priced = price_lines(&order.lines, &names, &prices.by_sku);
        let status = if priced.is_complete() {
            OrderStatus::Confirmed
        } else {
            OrderStatus::PendingPricing
        };
        let placed = Order {
            id,
            customer_id: order.customer_id.clone(),
            status,
            pricing: Some(prices.source),
            currency: priced.currency,
            total: priced.total,
            lines: priced.lines,
            fingerprint: order.fingerprint(),
            failure_reason: None,
            created_at,
            updated_at: now_ms(),
        };
        self.record_placed(placed, prices)
            .await
            .map(Placed::Created)
    }

    /// Holds the order's stock; returns the items' names by sku.
    async fn reserve(&self, id: &OrderId, order: &NewOrder) -> Result<HashMap<Sku, String>, Error> {
        let reserved = self
            .inventory
            .reserve(&self.request_id, id, &order.lines, self.call);
        match reserved.await {
            Ok(r) if r.status.holds_stock() => {
                Ok(r.items.into_iter().map(|i| (i.sku, i.name)).collect())
            }
            Ok(r) => {
                let reason = format!("the reservation came back {:?}", r.status);
                Err(self.fail_holding(id, reason, RETRY_SOON).await)
            }
            Err(e) => Err(self.reservation_refused(id, e).await),
        }
    }

    /// Ends the order for a reservation inventory refused or could not take,
    /// and says why to the caller.
    async fn reservation_refused(&self, id: &OrderId, e: InventoryError) -> Error {
        match e {
            InventoryError::InsufficientStock { skus } => {
                self.end(id, OrderStatus::Rejected, "insufficient stock")
                    .await;
                Error::InsufficientStock { skus }
            }
            InventoryError::UnknownSku { skus } => {
                self.end(id, OrderStatus::Rejected, "unknown sku").await;
                Error::UnknownSku { skus }
            }
            InventoryError::Unavailable {
                retry_after,
                may_have_landed: true,
                cause,
            } => {
                let reason = format!("reserving stock failed: {cause}");
                self.fail_holding(id, reason, retry_after).await
            }
            InventoryError::Unavailable {
                retry_after, cause, ..
            } => {
                let reason = format!("reserving stock failed: {cause}");
                self.end(id, OrderStatus::Failed, &reason).await;
                Error::InventoryUnavailable {
                    reason,
                    retry_after,
                }
            }
            InventoryError::Busy => {
                self.end(
                    id,
                    OrderStatus::Failed,
                    "too many calls to inventory in flight",
                )
                .await;
                Error::DependencyBusy {
                    dependency: "inventory",
                }
            }
            InventoryError::DeadlineExceeded { may_have_landed } => {
                self.out_of_time(id, "reserve", may_have_landed).await
            }
            refused @ (InventoryError::Refused { .. } | InventoryError::Expired) => {
                let reason = refused.to_string();
                self.end(id, OrderStatus::Failed, &reason).await;
                Error::InventoryRefused { reason }
            }
        }
    }

    /// Live prices, or the last ones seen when pricing cannot answer. Only a
    /// store failure fails the order (stock is held by then: released).
    async fn prices(&self, id: &OrderId, order: &NewOrder) -> Result<Prices, Error> {
        let asked_at = now_ms();
        // Pricing is optional (the last-seen prices stand in), so its quote,
        // retries included, may not spend the time the confirm needs: it ends
        // a confirm's worth before the order's deadline, and then falls back.
        let call = self.call.leaving(self.limits.confirm_reserve);
        let quote = self.pricing.quote(&self.request_id, &order.lines, call);
        let quoted = match quote.await {
            Ok(quotes) => {
                let by_sku = quotes
                    .into_iter()
                    .map(|q| (q.sku.clone(), q.into()))
                    .collect();
                return Ok(Prices {
                    source: PricingSource::Live,
                    by_sku,
                    asked_at,
                });
            }
            // No time left to confirm either: the order ends here.
            Err(e) if e.is_deadline() && self.call.deadline().expired() => {
                return Err(self.out_of_time(id, "pricing", true).await);
            }
            Err(e) => e,
        };
        tracing::warn!(error = %quoted, "pricing unavailable; using last-seen prices");
        match self.store.last_prices(order.lines.skus()).await {
            Ok(by_sku) => Ok(Prices {
                source: PricingSource::Fallback,
                by_sku,
                asked_at,
            }),
            Err(e) => {
                self.release(id).await;
                self.end(id, OrderStatus::Failed, "no prices could be read")
                    .await;
                Err(Error::Unexpected(e.context("reading last-seen prices")))
            }
        }
    }

    /// Keeps the reserved stock for good, or releases it and fails the order.
    async fn confirm(&self, id: &OrderId) -> Result<(), Error> {
        match self
            .confirmations
            .confirm(&self.request_id, id, self.call)
            .await
        {
            Ok(()) => Ok(()),
            // The stock is held by now, whether or not the confirm landed.
            Err(InventoryError::DeadlineExceeded { .. }) => {
                Err(self.out_of_time(id, "confirm", true).await)
            }
            Err(InventoryError::Busy) => {
                self.release(id).await;
                let reason = "too many calls to inventory in flight to confirm";
                self.end(id, OrderStatus::Failed, reason).await;
                Err(Error::DependencyBusy {
                    dependency: "inventory",
                })
            }
            Err(e) => {
                let retry_after = e.retry_after();
                let reason = format!("confirming the reservation failed: {e}");
                Err(self.fail_holding(id, reason, retry_after).await)
            }
        }
    }

    /// Writes the placed order over its pending row (and live prices as the
    /// last seen), and counts it.
    async fn record_placed(&self, placed: Order, prices: Prices) -> Result<Order, Error> {
        let live = match prices.source {
            PricingSource::Live => prices.by_sku,
            PricingSource::Fallback => HashMap::new(),
        };
        if let Err(e) = self.store.complete(&placed, &live, prices.asked_at).await {
            // Stock is confirmed but the order could not say so: give it back.
            self.release(&placed.id).await;
            return Err(Error::Unexpected(e.context("recording the placed order")));
        }
        self.metrics.ended(placed.status);
        self.metrics.priced(prices.source);
        tracing::info!(
            status = placed.status.as_str(),
            pricing = prices.source.as_str(),
            "order placed"
        );
        Ok(placed)
    }

    /// Releases whatever may be held, ends the order as failed, and returns
    /// the caller's error: inventory could not do its part.
    async fn fail_holding(
        &self,
        id: &OrderId,
        reason: String,
        retry_after: std::time::Duration,
    ) -> Error {
        self.release(id).await;
        self.end(id, OrderStatus::Failed, &reason).await;
        Error::InventoryUnavailable {
            reason,
            retry_after,
        }
    }

    /// The order's deadline ran out at `stage`: releases what may be held
    /// (on the release's own budget), ends the order as failed, and returns
    /// the caller's 504.
    async fn out_of_time(&self, id: &OrderId, stage: &'static str, holding: bool) -> Error {
        if holding {
            self.release(id).await;
        }
        let reason = format!("the order's deadline passed ({stage})");
        self.end(id, OrderStatus::Failed, &reason).await;
        self.metrics.deadline_exceeded(stage);
        Error::DeadlineExceeded { stage }
    }

    /// Best effort: if this fails too, the reservation expires at inventory.
    async fn release(&self, id: &OrderId) {
        if let Err(e) = self.inventory.release(&self.request_id, id).await {
            tracing::warn!(error = %e, order_id = %id, "release failed; the reservation will expire");
        }
    }

    /// Ends a pending order as `status` (rejected or failed) and counts it.
    /// Best effort: an order left `pending` is resolved by the recovery task.
    async fn end(&self, id: &OrderId, status: OrderStatus, reason: &str) {
        match self.store.end(id, status, reason, now_ms()).await {
            Ok(true) => self.metrics.ended(status),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error.cause_chain = %format_args!("{e:#}"), order_id = %id, "could not record the order's end");
            }
        }
    }

    /// Cancels an order that holds stock, releasing the stock first.
    ///
    /// # Errors
    /// Unknown order (or one `access` may not see), an order that holds
    /// nothing, inventory unavailable.
    pub async fn cancel(&self, id: &OrderId, access: &Access) -> Result<Order, Error> {
        let not_found = || Error::OrderNotFound {
            id: id.as_str().to_owned(),
        };
        let order = self
            .store
            .get(id)
            .await?
            .filter(|order| access.may_see(&order.customer_id))
            .ok_or_else(not_found)?;
        if order.status == OrderStatus::Cancelled {
            return Ok(order);
        }
        if !order.status.holds_stock() {
            return Err(Error::NotCancellable {
                id: id.as_str().to_owned(),
                status: order.status,
            });
        }
        self.inventory
            .release(&self.request_id, id)
            .await
            .map_err(|e| match e {
                InventoryError::DeadlineExceeded { .. } => {
                    Error::DeadlineExceeded { stage: "release" }
                }
                e => Error::InventoryUnavailable {
                    retry_after: e.retry_after(),
                    reason: format!("releasing the stock failed: {e}"),
                },
            })?;
        self.store.cancel(id, now_ms()).await?;
        tracing::info!(order_id = %id, "order cancelled; stock released");
        self.store.get(id).await?.ok_or_else(not_found)
    }
}

/// The answer to a repeated Idempotency-Key.
///
/// Keys are unique across all customers (the `orders.idempotency_key` UNIQUE
/// constraint decides races between replicas), and the fingerprint includes
/// the customer: a key another customer used first is answered 422 like any
/// key reused for a different order, but without naming that order, so
/// customer A is never handed, nor told the id of, what customer B placed.
/// Scoping keys per customer instead would mean rebuilding the table on
/// SQLite for a case that client-chosen random keys make vanishingly rare.
fn replay(first: Order, request: &NewOrder) -> Result<Placed, Error> {
    if first.customer_id != request.customer_id {
        return Err(Error::IdempotencyKeyReused { order_id: None });
    }
    if first.fingerprint != request.fingerprint() {
        return Err(Error::IdempotencyKeyReused {
            order_id: Some(first.id.as_str().to_owned()),
        });
    }
    if first.status == OrderStatus::Pending {
        return Err(Error::OrderInProgress {
            order_id: first.id.as_str().to_owned(),
        });
    }
    Ok(Placed::Replayed(first))
}
