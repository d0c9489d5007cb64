//! The inventory service's own metrics (names in `shared::metrics::names`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use shared::metrics::{Registry, names};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// Reservation requests by outcome, and reservations expired by the sweeper.
#[derive(Clone)]
pub struct InventoryMetrics {
    reservations: Family<OutcomeLabels, Counter>,
    expired: Counter,
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

    pub fn expired(&self, count: u64) {
        self.expired.inc_by(count);
    }
}
