//! Order's events: what each status change of an order publishes, and the
//! shape of its `data` (the schemas are in `order/events/`).
//!
//! An order that leaves `pending` (confirmed, pending_pricing, rejected,
//! failed) or is cancelled gets one event, `shop.order.<status>`, whose
//! subject is the order id; [`store`](crate::store) writes it in the same
//! transaction as the status change.

use serde::Serialize;
use shared_events::CloudEvent;
use shared_vocabulary::money::Money;

use crate::domain::{Order, OrderStatus, PricingSource};

/// The producing service, as in `source` (`/order`) and the stream name.
pub const SERVICE: &str = "order";

/// The prefix of every order event type.
pub const ORDER_EVENTS: &str = "shop.order.";

/// The event type of an order that reached `status`; none for `pending`.
pub fn event_type(status: OrderStatus) -> Option<&'static str> {
    match status {
        OrderStatus::Pending => None,
        OrderStatus::Confirmed => Some("shop.order.confirmed"),
        OrderStatus::PendingPricing => Some("shop.order.pending_pricing"),
        OrderStatus::Rejected => Some("shop.order.rejected"),
        OrderStatus::Failed => Some("shop.order.failed"),
        OrderStatus::Cancelled => Some("shop.order.cancelled"),
    }
}

/// The `data` of every order event: the order as it now stands.
#[derive(Debug, Serialize)]
pub struct OrderEventData<'a> {
    pub order_id: &'a str,
    pub customer_id: &'a str,
    pub status: OrderStatus,
    pub lines: Vec<LineData<'a>>,
    /// Null while a line is unpriced, and for orders that ended before pricing.
    pub total: Option<Money>,
    pub currency: Option<&'a str>,
    pub pricing_source: Option<PricingSource>,
    /// Why a `rejected` or `failed` order did not go through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
}

/// One line of an order event.
#[derive(Debug, Serialize)]
pub struct LineData<'a> {
    pub sku: &'a str,
    pub quantity: u32,
    /// Null when the sku had no price (or the order ended before pricing).
    pub unit_price: Option<Money>,
}

impl<'a> From<&'a Order> for OrderEventData<'a> {
    fn from(order: &'a Order) -> Self {
        Self {
            order_id: order.id.as_str(),
            customer_id: order.customer_id.as_str(),
            status: order.status,
            lines: order
                .lines
                .iter()
                .map(|line| LineData {
                    sku: line.sku.as_str(),
                    quantity: line.quantity,
                    unit_price: line.unit_price,
                })
                .collect(),
            total: order.total,
            currency: order.currency.as_deref(),
            pricing_source: order.pricing,
            reason: order.failure_reason.as_deref(),
        }
    }
}

/// The event `order` in its current status publishes; `None` while pending.
///
/// # Errors
/// When the data cannot be serialised.
pub fn order_event(order: &Order) -> anyhow::Result<Option<CloudEvent>> {
    let Some(event_type) = event_type(order.status) else {
        return Ok(None);
    };
    let data = OrderEventData::from(order);
    CloudEvent::new(SERVICE, event_type, order.id.as_str(), &data).map(Some)
}
