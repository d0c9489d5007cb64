//! The order service's own metrics (names in `shared::metrics::names`).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use shared::metrics::{LatencyFamily, Registry, latency_family, names};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    dependency: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DependencyLabels {
    dependency: String,
}

/// Orders by outcome and pricing source; downstream calls by outcome and latency.
#[derive(Clone)]
pub struct OrderMetrics {
    orders: Family<OutcomeLabels, Counter>,
    by_pricing: Family<SourceLabels, Counter>,
    calls: Family<CallLabels, Counter>,
    call_duration: LatencyFamily<DependencyLabels>,
}

/// Every order outcome, so that each series exists (at 0) from the start.
const OUTCOMES: [&str; 4] = ["confirmed", "pending_pricing", "rejected", "failed"];

impl OrderMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            orders: Family::default(),
            by_pricing: Family::default(),
            calls: Family::default(),
            call_duration: latency_family(),
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
            names::DEPENDENCY_CALLS,
            "Calls to inventory and pricing, by outcome",
            metrics.calls.clone(),
        );
        registry.register(
            names::DEPENDENCY_CALL_DURATION,
            "Time taken by calls to inventory and pricing",
            metrics.call_duration.clone(),
        );
        for outcome in OUTCOMES {
            let _ = metrics.orders.get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            });
        }
        for source in ["live", "fallback"] {
            let _ = metrics.by_pricing.get_or_create(&SourceLabels {
                source: source.into(),
            });
        }
        metrics
    }

    /// An order ended as `outcome` (one of confirmed, pending_pricing, rejected, failed).
    pub fn order(&self, outcome: &str) {
        self.orders
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// An order was priced from `source` (live or fallback).
    pub fn priced(&self, source: &str) {
        self.by_pricing
            .get_or_create(&SourceLabels {
                source: source.into(),
            })
            .inc();
    }

    /// One downstream call: `outcome` is success, client_error, server_error,
    /// timeout, transport, decode or rejected (breaker open, no network used).
    pub fn dependency_call(&self, dependency: &str, outcome: &str, took: Duration) {
        let labels = CallLabels {
            dependency: dependency.into(),
            outcome: outcome.into(),
        };
        self.calls.get_or_create(&labels).inc();
        if outcome != "rejected" {
            self.call_duration
                .get_or_create(&DependencyLabels {
                    dependency: dependency.into(),
                })
                .observe(took.as_secs_f64());
        }
    }
}
