//! The order service's own metrics (names in its `names` module).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use shared_http::metrics::{LatencyFamily, Registry, latency_family};
use shared_resilience::names as call_names;

use crate::domain::{OrderStatus, PricingSource};

/// Order's own metrics; those of its calls are in `shared_resilience::names` (counters gain `_total` on the wire).
pub mod names {
    pub const ORDERS: &str = "orders";
    pub const ORDERS_BY_PRICING: &str = "orders_by_pricing";
    pub const ORDER_CONFIRM_BATCH_SIZE: &str = "order_confirm_batch_size";
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
struct CallLabels {
    dependency: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DependencyLabels {
    dependency: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

/// Where in the order flow a budget can run out: the `stage` label of
/// `deadline_exceeded_total`, each series present (at 0) from the start.
pub const STAGES: [&str; 3] = ["reserve", "pricing", "confirm"];

/// Orders by outcome and pricing source; downstream calls by outcome and latency.
#[derive(Clone)]
pub struct OrderMetrics {
    orders: Family<OutcomeLabels, Counter>,
    by_pricing: Family<SourceLabels, Counter>,
    calls: Family<CallLabels, Counter>,
    call_duration: LatencyFamily<DependencyLabels>,
    deadlines: Family<StageLabels, Counter>,
    retries: Family<CallLabels, Counter>,
    budget_exhausted: Family<DependencyLabels, Counter>,
    confirm_batches: Histogram,
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
            calls: Family::default(),
            call_duration: latency_family(),
            deadlines: Family::default(),
            retries: Family::default(),
            budget_exhausted: Family::default(),
            // 1, 2, 4, … 128: inventory takes at most 100 at once.
            confirm_batches: Histogram::new(exponential_buckets(1.0, 2.0, 8)),
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
            call_names::DEPENDENCY_CALLS,
            "Calls to inventory and pricing, by outcome",
            metrics.calls.clone(),
        );
        registry.register(
            call_names::DEPENDENCY_CALL_DURATION,
            "Time taken by calls to inventory and pricing",
            metrics.call_duration.clone(),
        );
        registry.register(
            call_names::DEADLINE_EXCEEDED,
            "Orders whose deadline ran out, by the stage it ran out in (reserve, pricing, confirm)",
            metrics.deadlines.clone(),
        );
        registry.register(
            call_names::DEPENDENCY_RETRIES,
            "Retries of calls to inventory and pricing, by outcome (success: the retry's answer was usable)",
            metrics.retries.clone(),
        );
        registry.register(
            call_names::RETRY_BUDGET_EXHAUSTED,
            "Retries not made because the dependency's retry budget was spent",
            metrics.budget_exhausted.clone(),
        );
        registry.register(
            names::ORDER_CONFIRM_BATCH_SIZE,
            "Orders confirmed per call to inventory (orders reaching the confirm together share one call)",
            metrics.confirm_batches.clone(),
        );
        for dependency in DEPENDENCIES {
            for outcome in ["success", "failure"] {
                let _ = metrics.retries.get_or_create(&CallLabels {
                    dependency,
                    outcome,
                });
            }
            let _ = metrics
                .budget_exhausted
                .get_or_create(&DependencyLabels { dependency });
        }
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

    /// A retry of a call to `dependency` ended; `usable`: its answer was one
    /// (a success or a refusal), not another failure of the way.
    pub fn retried(&self, dependency: &'static str, usable: bool) {
        let outcome = if usable { "success" } else { "failure" };
        self.retries
            .get_or_create(&CallLabels {
                dependency,
                outcome,
            })
            .inc();
    }

    /// One confirmation call to inventory, made for `orders` orders.
    pub fn confirm_batch(&self, orders: usize) {
        #[allow(clippy::cast_precision_loss)] // at most 100
        self.confirm_batches.observe(orders as f64);
    }

    /// A retry to `dependency` was not made: its budget was spent.
    pub fn retry_budget_exhausted(&self, dependency: &'static str) {
        self.budget_exhausted
            .get_or_create(&DependencyLabels { dependency })
            .inc();
    }

    /// One attempt at a downstream call (a retried call counts each): `outcome` is success, client_error, server_error,
    /// timeout, transport, decode, credentials (this service's token could not
    /// be had), deadline_exceeded, rejected (breaker open, no network used)
    /// or busy (bulkhead full, no network used).
    pub fn dependency_call(&self, dependency: &'static str, outcome: &'static str, took: Duration) {
        let labels = CallLabels {
            dependency,
            outcome,
        };
        self.calls.get_or_create(&labels).inc();
        if outcome != "rejected" && outcome != "busy" {
            self.call_duration
                .get_or_create(&DependencyLabels { dependency })
                .observe(took.as_secs_f64());
        }
    }
}
