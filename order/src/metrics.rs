//! The order service's own metrics (names in its `names` module).
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use shared_http::metrics::Registry;
use shared_resilience::call_metrics::CallMetrics;

use crate::domain::{OrderStatus, PricingSource};

/// Order's own metrics; those of its calls are `shared_resilience`'s `CallMetrics` (counters gain `_total` on the wire).
pub mod names {
    pub const ORDERS: &str = "orders";
    pub const ORDERS_BY_PRICING: &str = "orders_by_pricing";
    pub const ORDER_CONFIRM_BATCH_SIZE: &str = "order_confirm_batch_size";
    pub const ORDER_SINGLE_CONFIRMS: &str = "order_single_confirms";
    pub const DEADLINE_EXCEEDED: &str = "deadline_exceeded";
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

/// Where in the order flow a budget can run out: the `stage` label of
/// `deadline_exceeded_total`, each series present (at 0) from the start.
pub const STAGES: [&str; 3] = ["reserve", "pricing", "confirm"];

/// Orders by outcome and pricing source, deadlines by stage, confirmation
/// batches and single confirms; and the calls to inventory and pricing ([`CallMetrics`]).
#[derive(Clone)]
pub struct OrderMetrics {
    orders: Family<OutcomeLabels, Counter>,
    by_pricing: Family<SourceLabels, Counter>,
    deadlines: Family<StageLabels, Counter>,
    confirm_batches: Histogram,
    single_confirms: Counter,
    /// The calls to inventory and pricing, counted by their `Downstream`s.
    pub calls: CallMetrics,
}

/// The dependencies whose retry series are present (at 0) from the start.
const DEPENDENCIES: [&str; 2] = ["inventory", "pricing"];

/// The statuses an order's placing ends in: the `outcome` label's values,
/// each series present (at 0) from the start.
const OUTCOMES: [OrderStatus; 4] = [
    OrderStatus::Confirmed,
    OrderStatus::PendingPricing,
    OrderStatus::Rejected,
    OrderStatus::Failed,
];

impl OrderMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            orders: Family::default(),
            by_pricing: Family::default(),
            deadlines: Family::default(),
            // 1, 2, 4, … 128: inventory takes at most 100 at once.
            confirm_batches: Histogram::new(exponential_buckets(1.0, 2.0, 8)),
            single_confirms: Counter::default(),
            calls: CallMetrics::register(registry, &DEPENDENCIES),
        };
        registry.register(
            names::ORDERS,
            "Orders placed, by outcome (confirmed, pending_pricing, rejected, failed)",
            metrics.orders.clone(),
        );
        registry.register(
            names::ORDERS_BY_PRICING,
            "Orders priced, by source of the prices (live, fallback)",
            metrics.by_pricing.clone(),
        );
        registry.register(
            names::DEADLINE_EXCEEDED,
            "Orders whose deadline ran out, by the stage it ran out in (reserve, pricing, confirm)",
            metrics.deadlines.clone(),
        );
        registry.register(
            names::ORDER_CONFIRM_BATCH_SIZE,
            "Orders confirmed per call to inventory (orders reaching the confirm together share one call)",
            metrics.confirm_batches.clone(),
        );
        registry.register(
            names::ORDER_SINGLE_CONFIRMS,
            "Orders confirmed one at a time (POST /reservations/{id}/confirm) because inventory did not serve the batch confirm",
            metrics.single_confirms.clone(),
        );
        for stage in STAGES {
            let _ = metrics.deadlines.get_or_create(&StageLabels { stage });
        }
        for status in OUTCOMES {
            let _ = metrics.orders.get_or_create(&OutcomeLabels {
                outcome: status.as_str(),
            });
        }
        for source in [PricingSource::Live, PricingSource::Fallback] {
            let _ = metrics.by_pricing.get_or_create(&SourceLabels {
                source: source.as_str(),
            });
        }
        metrics
    }

    /// An order's placing ended as `status` (confirmed, pending_pricing,
    /// rejected or failed; a later cancellation is not an outcome of placing).
    pub fn ended(&self, status: OrderStatus) {
        if OUTCOMES.contains(&status) {
            self.orders
                .get_or_create(&OutcomeLabels {
                    outcome: status.as_str(),
                })
                .inc();
        }
    }

    /// A placed order was priced from `source`.
    pub fn priced(&self, source: PricingSource) {
        self.by_pricing
            .get_or_create(&SourceLabels {
                source: source.as_str(),
            })
            .inc();
    }

    /// An order's deadline ran out at `stage` (one of [`STAGES`]).
    pub fn deadline_exceeded(&self, stage: &'static str) {
        self.deadlines.get_or_create(&StageLabels { stage }).inc();
    }

    /// One confirmation call to inventory, made for `orders` orders.
    pub fn confirm_batch(&self, orders: usize) {
        #[allow(clippy::cast_precision_loss)] // at most 100
        self.confirm_batches.observe(orders as f64);
    }

    /// One order confirmed with a call of its own: inventory did not serve
    /// the batch confirm.
    pub fn single_confirm(&self) {
        self.single_confirms.inc();
    }
}
