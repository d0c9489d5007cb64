//! The events inventory publishes (through the outbox, see
//! `shared_events`), and the shape of their `data`. Their JSON Schemas are
//! in `inventory/events/`.
//!
//! - [`STOCK_CHANGED`] (subject: the sku): an item was created, renamed or
//!   recategorised, or its stock adjusted by an operator. Not sent for
//!   reservations, confirmations or releases (those are the order's story).
//! - [`RESERVATION_EXPIRED`] (subject: the reservation id): a reservation
//!   nobody confirmed in time gave its stock back.

use serde::Serialize;
use shared_auth::Actor;
use shared_events::CloudEvent;
use shared_http::timestamp::to_rfc3339;

use crate::domain::{ChangeKind, Item, ReservationId, ReservedLine, StockAdjustment};

/// The `source` of inventory's events (`/inventory`).
pub const SOURCE: &str = "inventory";
pub const STOCK_CHANGED: &str = "shop.inventory.stock_changed";
pub const RESERVATION_EXPIRED: &str = "shop.inventory.reservation_expired";

/// `data` of [`STOCK_CHANGED`]: the item after the change.
#[derive(Debug, Serialize)]
struct StockChanged<'a> {
    sku: &'a str,
    name: &'a str,
    category: &'a str,
    stock: i64,
    /// `None` for a created item.
    previous_stock: Option<i64>,
    /// The words of the item's history (`GET /items/{sku}/history`'s `kind`):
    /// `created`, `updated` (name or category) or `stock` (an adjustment).
    change: ChangeKind,
    /// `stock` changes: what was added (negative: taken) and why.
    delta: Option<i64>,
    reason: Option<&'a str>,
    actor: &'a str,
}

/// The event of `item` just created or renamed/recategorised.
///
/// # Errors
/// When the event cannot be serialised.
pub fn item_saved(item: &Item, created: bool, actor: &Actor) -> anyhow::Result<CloudEvent> {
    let (change, previous_stock) = if created {
        (ChangeKind::Created, None)
    } else {
        (ChangeKind::Updated, Some(item.stock))
    };
    stock_changed(item, change, previous_stock, None, actor)
}

/// The event of `item` (as it is after `adjustment`).
///
/// # Errors
/// When the event cannot be serialised.
pub fn stock_adjusted(
    item: &Item,
    adjustment: &StockAdjustment,
    actor: &Actor,
) -> anyhow::Result<CloudEvent> {
    let previous = item.stock.saturating_sub(adjustment.delta());
    stock_changed(
        item,
        ChangeKind::Stock,
        Some(previous),
        Some(adjustment),
        actor,
    )
}

fn stock_changed(
    item: &Item,
    change: ChangeKind,
    previous_stock: Option<i64>,
    adjustment: Option<&StockAdjustment>,
    actor: &Actor,
) -> anyhow::Result<CloudEvent> {
    let data = StockChanged {
        sku: item.sku.as_str(),
        name: &item.name,
        category: &item.category,
        stock: item.stock,
        previous_stock,
        change,
        delta: adjustment.map(StockAdjustment::delta),
        reason: adjustment.map(StockAdjustment::reason),
        actor: actor.as_str(),
    };
    CloudEvent::new(SOURCE, STOCK_CHANGED, item.sku.as_str(), &data)
}

/// `data` of [`RESERVATION_EXPIRED`].
#[derive(Debug, Serialize)]
struct ReservationExpired<'a> {
    reservation_id: &'a str,
    lines: Vec<ExpiredLine<'a>>,
    /// RFC 3339, UTC.
    expired_at: String,
}

/// A line whose stock went back.
#[derive(Debug, Serialize)]
struct ExpiredLine<'a> {
    sku: &'a str,
    quantity: i64,
}

/// The event of the reservation `id`, holding `lines`, expired at `now` (ms).
///
/// # Errors
/// When the event cannot be serialised.
pub fn reservation_expired(
    id: &ReservationId,
    lines: &[ReservedLine],
    now: i64,
) -> anyhow::Result<CloudEvent> {
    let data = ReservationExpired {
        reservation_id: id.as_str(),
        lines: lines
            .iter()
            .map(|line| ExpiredLine {
                sku: line.sku.as_str(),
                quantity: line.quantity,
            })
            .collect(),
        expired_at: to_rfc3339(now),
    };
    CloudEvent::new(SOURCE, RESERVATION_EXPIRED, id.as_str(), &data)
}
