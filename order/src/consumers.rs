//! What order does with other services' events (durable consumers, each
//! effect committed with its inbox row, so a redelivery changes nothing):
//!
//! - `order-prices` takes `shop.pricing.price_changed` into the last-seen
//!   prices, so that an order priced by the fallback uses today's price, not
//!   the one seen at the last order.
//! - `order-expiries` takes `shop.inventory.reservation_expired` and resolves
//!   the pending order holding that reservation at once, as the periodic
//!   [`recovery`](crate::recovery) would later.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::LocalBoxFuture;
use serde::Deserialize;
use shared_events::consumer::{Consumers, Effect};
use shared_events::{CloudEvent, Handler, Subscription};
use shared_http::timestamp::now_ms;
use shared_vocabulary::money::Money;

use crate::clients::InventoryClient;
use crate::domain::{OrderId, Sku, UnitPrice};
use crate::metrics::OrderMetrics;
use crate::recovery;
use crate::store::{Handled, Store};

pub const PRICES: Subscription = Subscription {
    name: "order-prices",
    producer: "pricing",
    event_type: "shop.pricing.price_changed",
};

pub const EXPIRIES: Subscription = Subscription {
    name: "order-expiries",
    producer: "inventory",
    event_type: "shop.inventory.reservation_expired",
};

/// What order reads of a `shop.pricing.price_changed` event's data (other
/// fields are ignored).
#[derive(Debug, Deserialize)]
struct PriceChanged {
    sku: String,
    /// What one unit costs now, after the sku's own discount.
    price: Money,
    discount_percent: u8,
    currency: String,
}

impl PriceChanged {
    fn unit_price(self) -> anyhow::Result<(Sku, UnitPrice)> {
        anyhow::ensure!(
            self.discount_percent <= 100,
            "discount {} is not a percentage",
            self.discount_percent
        );
        anyhow::ensure!(
            self.currency.len() == 3 && self.currency.bytes().all(|b| b.is_ascii_uppercase()),
            "currency {:?} is not an ISO 4217 code",
            self.currency
        );
        let price = UnitPrice {
            unit: self.price,
            discount_percent: self.discount_percent,
            currency: self.currency,
        };
        Ok((Sku::parse(&self.sku)?, price))
    }
}

/// `order-prices`: a price change becomes the last-seen price of its sku.
pub struct PriceChanges {
    store: Store,
}

impl PriceChanges {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

impl Handler for PriceChanges {
    fn handle<'a>(&'a self, event: &'a CloudEvent) -> LocalBoxFuture<'a, anyhow::Result<Effect>> {
        Box::pin(async move {
            let (sku, price) = event.data_as::<PriceChanged>()?.unit_price()?;
            let seen_at = event.time_ms().unwrap_or_else(now_ms);
            let handled = Handled {
                consumer: PRICES.name,
                event_id: &event.id,
            };
            let prices = HashMap::from([(sku, price)]);
            Ok(
                if self
                    .store
                    .remember_prices(&prices, seen_at, handled)
                    .await?
                {
                    Effect::Applied
                } else {
                    Effect::AlreadyHandled
                },
            )
        })
    }
}

/// Makes an inventory client; the consumer runs outside the HTTP workers,
/// and a client (awc) stays on the thread that made it.
pub type InventoryFactory = Arc<dyn Fn() -> InventoryClient + Send + Sync>;

/// `order-expiries`: the pending order whose reservation expired fails now.
pub struct Expiries {
    store: Store,
    inventory: InventoryFactory,
    metrics: OrderMetrics,
}

impl Expiries {
    pub fn new(store: Store, inventory: InventoryFactory, metrics: OrderMetrics) -> Self {
        Self {
            store,
            inventory,
            metrics,
        }
    }
}

impl Handler for Expiries {
    fn handle<'a>(&'a self, event: &'a CloudEvent) -> LocalBoxFuture<'a, anyhow::Result<Effect>> {
        Box::pin(async move {
            // The reservation id is the order id; any other reservation is
            // not an order's, and there is nothing to do.
            let Some(id) = OrderId::parse(&event.subject) else {
                return Ok(Effect::Applied);
            };
            // A reservation of that shape that is no order's (one an operator
            // made, say) is left alone: no release call for stock that is back.
            if self.store.get(&id).await?.is_none() {
                return Ok(Effect::Applied);
            }
            let handled = Handled {
                consumer: EXPIRIES.name,
                event_id: &event.id,
            };
            let inventory = (self.inventory)();
            let reason = "its stock reservation expired";
            let resolved = recovery::resolve(
                &self.store,
                &inventory,
                &self.metrics,
                &id,
                reason,
                Some(handled),
            )
            .await?;
            Ok(match resolved {
                Some(_) => Effect::Applied,
                None => Effect::AlreadyHandled,
            })
        })
    }
}

/// Both consumers, ready to start.
pub fn consumers(store: &Store, inventory: InventoryFactory, metrics: &OrderMetrics) -> Consumers {
    Consumers::default()
        .with(PRICES, Arc::new(PriceChanges::new(store.clone())))
        .with(
            EXPIRIES,
            Arc::new(Expiries::new(store.clone(), inventory, metrics.clone())),
        )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A newer pricing may add fields to its events' `data` (additive
    /// changes only): this release reads what it knows and ignores the rest.
    #[test]
    fn a_price_change_with_fields_this_release_does_not_know_is_read() {
        let data = json!({"sku": "A001", "price": 749.5, "base_price": 749.5,
                          "discount_percent": 0, "currency": "USD",
                          "valid_from": "2027-01-01T00:00:00Z", "tiers": [{"min_quantity": 10}]});
        let event = CloudEvent::new("pricing", PRICES.event_type, "A001", &data).expect("event");
        let (sku, price) = event
            .data_as::<PriceChanged>()
            .expect("read")
            .unit_price()
            .expect("valid");
        assert_eq!(sku.as_str(), "A001");
        assert_eq!(price.unit, Money::from_decimal(749.5).expect("an amount"));
    }
}
