//! The events inventory publishes (through the outbox, see
//! `shared_events`), and the shape of their `data`. Their JSON Schemas are
//! in `inventory/events/`.
//!
//! - [`STOCK_CHANGED`] (subject: the sku): an item was created (by an
//!   operator, or the shipped catalogue seeded at first start), renamed or
//!   recategorised, or its stock moved: adjusted by an operator, reserved,
//!   confirmed, released or expired. Its `stock` is the level after the
//!   change, so that a consumer keeps every item's stock from these alone.
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

/// The actor of the changes inventory makes by itself (expiries, the seed).
const ITSELF: &str = "inventory";

/// What moved an item's stock (or touched the item): `data.movement` of
/// [`STOCK_CHANGED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Movement {
    /// Created with stock 0 (`PUT /items/{sku}`), or seeded from the catalogue.
    Created,
    /// Renamed or recategorised: the stock is as it was.
    Updated,
    /// An operator's adjustment (`POST /items/{sku}/stock`): a restock when
    /// `delta` is positive.
    Adjusted,
    /// A reservation took `quantity`.
    Reserved,
    /// A reservation's `quantity` is kept for good: the stock stays as it is.
    Confirmed,
    /// A reservation (held or confirmed) gave its `quantity` back.
    Released,
    /// A reservation nobody confirmed in time gave its `quantity` back.
    Expired,
}

/// A reservation's part in a movement of one item's stock.
#[derive(Debug, Clone, Copy)]
pub struct ReservationMove<'a> {
    pub movement: Movement,
    pub reservation: &'a ReservationId,
    /// The reservation's line for the item.
    pub quantity: i64,
}

impl ReservationMove<'_> {
    /// How the stock moved: taken, given back, or (confirmed) not at all.
    fn delta(&self) -> i64 {
        match self.movement {
            Movement::Reserved => -self.quantity,
            Movement::Released | Movement::Expired => self.quantity,
            _ => 0,
        }
    }
}

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
    /// Added after the first version (readers of that one ignore it).
    movement: Movement,
    /// Reservation movements: which reservation, and its line's quantity.
    #[serde(skip_serializing_if = "Option::is_none")]
    reservation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quantity: Option<i64>,
}

/// The event of `item` just created or renamed/recategorised.
///
/// # Errors
/// When the event cannot be serialised.
pub fn item_saved(item: &Item, created: bool, actor: &Actor) -> anyhow::Result<CloudEvent> {
    let data = if created {
        StockChanged::new(item, ChangeKind::Created, Movement::Created, None)
    } else {
        StockChanged::new(
            item,
            ChangeKind::Updated,
            Movement::Updated,
            Some(item.stock),
        )
    };
    data.event(actor.as_str())
}

/// The event of `item` seeded from the shipped catalogue at first start.
///
/// # Errors
/// When the event cannot be serialised.
pub fn item_seeded(item: &Item) -> anyhow::Result<CloudEvent> {
    StockChanged::new(item, ChangeKind::Created, Movement::Created, None).event(ITSELF)
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
    let mut data = StockChanged::new(item, ChangeKind::Stock, Movement::Adjusted, Some(previous));
    data.delta = Some(adjustment.delta());
    data.reason = Some(adjustment.reason());
    data.event(actor.as_str())
}

/// The event of `item` (as it is after `moved`), whose stock a reservation
/// moved; `actor` is `None` for inventory's own changes (expiries).
///
/// # Errors
/// When the event cannot be serialised.
pub fn reservation_moved(
    item: &Item,
    moved: &ReservationMove<'_>,
    actor: Option<&Actor>,
) -> anyhow::Result<CloudEvent> {
    let delta = moved.delta();
    let previous = item.stock.saturating_sub(delta);
    let mut data = StockChanged::new(item, ChangeKind::Stock, moved.movement, Some(previous));
    // Old readers know `delta` as "what was added": absent (null) when nothing was.
    data.delta = (delta != 0).then_some(delta);
    data.reservation_id = Some(moved.reservation.as_str());
    data.quantity = Some(moved.quantity);
    data.event(actor.map_or(ITSELF, Actor::as_str))
}

impl<'a> StockChanged<'a> {
    fn new(
        item: &'a Item,
        change: ChangeKind,
        movement: Movement,
        previous_stock: Option<i64>,
    ) -> Self {
        Self {
            sku: item.sku.as_str(),
            name: &item.name,
            category: &item.category,
            stock: item.stock,
            previous_stock,
            change,
            delta: None,
            reason: None,
            actor: ITSELF,
            movement,
            reservation_id: None,
            quantity: None,
        }
    }

    fn event(mut self, actor: &'a str) -> anyhow::Result<CloudEvent> {
        self.actor = actor;
        CloudEvent::new(SOURCE, STOCK_CHANGED, self.sku, &self)
    }
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
