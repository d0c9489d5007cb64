//! Per-endpoint metrics of a balancer: calls by outcome, the latency
//! estimate, ejections. Each series carries `dependency` and `endpoint`;
//! an endpoint that discovery dropped has its series removed, so that the
//! replicas a Kubernetes Deployment replaces over weeks (each a new pod
//! address) do not pile up as series no one will report again.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use shared_http::metrics::Registry;

use crate::names;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    dependency: &'static str,
    endpoint: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    dependency: &'static str,
    endpoint: String,
}

/// One set per process, shared by every dependency's balancer.
#[derive(Clone, Default)]
pub struct BalancerMetrics {
    calls: Family<CallLabels, Counter>,
    ewma: Family<EndpointLabels, Gauge<f64, AtomicU64>>,
    ejections: Family<EndpointLabels, Counter>,
    /// The `outcome` labels used so far (a handful), to find an endpoint's
    /// call series when it leaves.
    outcomes: Arc<Mutex<HashSet<&'static str>>>,
}

impl BalancerMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            names::ENDPOINT_CALLS,
            "Attempts at calls to each endpoint of a dependency, by outcome",
            metrics.calls.clone(),
        );
        registry.register(
            names::ENDPOINT_LATENCY_EWMA,
            "Each endpoint's peak-EWMA latency estimate, as the balancer last updated it",
            metrics.ewma.clone(),
        );
        registry.register(
            names::ENDPOINT_EJECTIONS,
            "Times each endpoint was taken out of rotation as an outlier",
            metrics.ejections.clone(),
        );
        metrics
    }

    pub(crate) fn call(
        &self,
        dependency: &'static str,
        endpoint: &str,
        outcome: &'static str,
        ewma: f64,
    ) {
        let endpoint = endpoint.to_owned();
        self.outcomes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(outcome);
        self.calls
            .get_or_create(&CallLabels {
                dependency,
                endpoint: endpoint.clone(),
                outcome,
            })
            .inc();
        self.ewma
            .get_or_create(&EndpointLabels {
                dependency,
                endpoint,
            })
            .set(ewma);
    }

    pub(crate) fn ejected(&self, dependency: &'static str, endpoint: &str) {
        self.ejections
            .get_or_create(&EndpointLabels {
                dependency,
                endpoint: endpoint.to_owned(),
            })
            .inc();
    }

    /// Removes every series of `endpoint`, which discovery dropped.
    pub(crate) fn left(&self, dependency: &'static str, endpoint: &str) {
        let outcomes: Vec<&'static str> = self
            .outcomes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .copied()
            .collect();
        let endpoint = endpoint.to_owned();
        for outcome in outcomes {
            self.calls.remove(&CallLabels {
                dependency,
                endpoint: endpoint.clone(),
                outcome,
            });
        }
        let labels = EndpointLabels {
            dependency,
            endpoint,
        };
        self.ewma.remove(&labels);
        self.ejections.remove(&labels);
    }
}
