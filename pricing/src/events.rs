//! The event pricing publishes (through the outbox, see `shared_events`),
//! and the shape of its `data`. Its JSON Schema is in `pricing/events/`.
//!
//! [`PRICE_CHANGED`] (subject: the sku): a sku was priced for the first time,
//! or its price (base, own discount or own tiers) was set to something else.
//! Setting a price to what it already was publishes nothing.

use serde::Serialize;
use shared_auth::Actor;
use shared_events::CloudEvent;
use shared_vocabulary::money::Money;

use crate::domain::{PriceEntry, PriceRules, Sku};

/// The `source` of pricing's events (`/pricing`).
pub const SOURCE: &str = "pricing";
pub const PRICE_CHANGED: &str = "shop.pricing.price_changed";

/// `data` of [`PRICE_CHANGED`]. Amounts are decimals with 2 places, as the
/// API shows money.
#[derive(Debug, Serialize)]
struct PriceChanged<'a> {
    sku: &'a str,
    /// What one unit costs now: `GET /price/{sku}`'s `final_price`.
    price: Money,
    /// Before the sku's own discount.
    base_price: Money,
    discount_percent: u8,
    currency: &'a str,
    /// What one unit cost before; `None` for a sku that had no price.
    previous_price: Option<Money>,
    actor: &'a str,
}

/// The event of `sku` now priced `entry`, priced `previous` before.
///
/// # Errors
/// When the event cannot be serialised.
pub fn price_changed(
    rules: &PriceRules,
    sku: &Sku,
    entry: &PriceEntry,
    previous: Option<&PriceEntry>,
    actor: &Actor,
) -> anyhow::Result<CloudEvent> {
    let quote = rules.quote(sku, entry, None);
    let data = PriceChanged {
        sku: sku.as_str(),
        price: quote.final_price,
        base_price: quote.base_price,
        discount_percent: quote.discount_percent,
        currency: rules.currency(),
        previous_price: previous.map(|p| rules.quote(sku, p, None).final_price),
        actor: actor.as_str(),
    };
    CloudEvent::new(SOURCE, PRICE_CHANGED, sku.as_str(), &data)
}
