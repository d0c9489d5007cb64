//! The inventory service's own metrics (names in its `names` module).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use shared_http::metrics::Registry;

/// Inventory's metrics (counters gain `_total` on the wire).
pub mod names {
    pub const RESERVATIONS: &str = "reservations";
    pub const RESERVATIONS_EXPIRED: &str = "reservations_expired";
}

/// Stock adjustments made through `POST /items/{sku}/stock`, by direction
/// (prometheus-client adds `_total`). Kept here, not in `shared`: it is inventory's word.
pub const STOCK_ADJUSTMENTS: &str = "inventory_stock_adjustments";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// Reservation requests by outcome, reservations expired by the sweeper, and
/// stock adjustments by direction.
#[derive(Clone)]
pub struct InventoryMetrics {
    reservations: Family<OutcomeLabels, Counter>,
    expired: Counter,
    adjustments: Family<DirectionLabels, Counter>,
}

/// Every reservation outcome, so that each series exists (at 0) from the start.
const OUTCOMES: [&str; 7] = [
    "reserved",
    "replayed",
    "insufficient_stock",
    "unknown_sku",
    "confirmed",
    "too_late",
    "released",
];

impl InventoryMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            reservations: Family::default(),
            expired: Counter::default(),
            adjustments: Family::default(),
        };
        registry.register(
            names::RESERVATIONS,
            "Reservation requests, by outcome (reserved, replayed, insufficient_stock, \
             unknown_sku, confirmed, too_late, released)",
            metrics.reservations.clone(),
        );
        registry.register(
            names::RESERVATIONS_EXPIRED,
            "Reservations expired unconfirmed, their stock returned",
            metrics.expired.clone(),
        );
        registry.register(
            STOCK_ADJUSTMENTS,
            "Stock adjustments made, by direction (in: stock added, out: stock taken)",
            metrics.adjustments.clone(),
        );
        for direction in ["in", "out"] {
            let _ = metrics
                .adjustments
                .get_or_create(&DirectionLabels { direction });
        }
        for outcome in OUTCOMES {
            let _ = metrics.reservations.get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            });
        }
        metrics
    }

    /// A reservation request ended as `outcome` (see the help text).
    pub fn reservation(&self, outcome: &str) {
        self.reservations
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// A stock adjustment was made; `direction` is `in` or `out`.
    pub fn stock_adjusted(&self, direction: &'static str) {
        self.adjustments
            .get_or_create(&DirectionLabels { direction })
            .inc();
    }

    pub fn expired(&self, count: u64) {
        self.expired.inc_by(count);
    }
}
