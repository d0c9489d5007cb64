//! Bulkheads: a limit on work in flight that refuses, never queues.
//!
//! A [`Bulkhead`] holds at most `limit` [`BulkheadPermit`]s at a time;
//! [`Bulkhead::try_acquire`] either hands one out at once or refuses at once.
//! A caller refused should answer 503 with `Retry-After` straight away: work
//! that waits in a queue for capacity ends up timing out anyway, holding a
//! connection and memory all the while (load shedding, not buffering). A
//! permit is given back when it is dropped, however the work ended.
//!
//! Refusals are counted in `bulkhead_rejected_total{bulkhead}`, each
//! bulkhead's series present (at 0) from the start.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::names;
use shared_http::metrics::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BulkheadLabels {
    bulkhead: &'static str,
}

/// The refusals of every bulkhead of a process.
#[derive(Clone, Default)]
pub struct BulkheadMetrics {
    rejected: Family<BulkheadLabels, Counter>,
}

impl BulkheadMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            names::BULKHEAD_REJECTED,
            "Work refused at once because a bulkhead was full, by bulkhead",
            metrics.rejected.clone(),
        );
        metrics
    }
}

/// A bulkhead is full: the work was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bulkhead {bulkhead} is full ({limit} in flight)")]
pub struct Full {
    pub bulkhead: &'static str,
    pub limit: usize,
}

/// A limit on work in flight; share it with an `Arc` (or clone it: clones
/// share the same limit).
#[derive(Clone)]
pub struct Bulkhead {
    name: &'static str,
    limit: usize,
    slots: Arc<Semaphore>,
    metrics: BulkheadMetrics,
}

/// One unit of work in flight; dropping it frees its slot.
#[derive(Debug)]
pub struct BulkheadPermit {
    _slot: OwnedSemaphorePermit,
}

impl std::fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bulkhead")
            .field("name", &self.name)
            .field("limit", &self.limit)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl Bulkhead {
    /// A bulkhead of `limit` (at least 1) named `name` in the metrics.
    pub fn new(name: &'static str, limit: usize, metrics: &BulkheadMetrics) -> Self {
        let limit = limit.max(1);
        let _ = metrics
            .rejected
            .get_or_create(&BulkheadLabels { bulkhead: name });
        Self {
            name,
            limit,
            slots: Arc::new(Semaphore::new(limit)),
            metrics: metrics.clone(),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// A slot now, or a refusal now (counted).
    ///
    /// # Errors
    /// [`Full`] when `limit` permits are out.
    pub fn try_acquire(&self) -> Result<BulkheadPermit, Full> {
        self.slots
            .clone()
            .try_acquire_owned()
            .map(|slot| BulkheadPermit { _slot: slot })
            .map_err(|_| {
                self.metrics
                    .rejected
                    .get_or_create(&BulkheadLabels {
                        bulkhead: self.name,
                    })
                    .inc();
                Full {
                    bulkhead: self.name,
                    limit: self.limit,
                }
            })
    }

    /// Permits out right now.
    pub fn in_flight(&self) -> usize {
        self.limit - self.slots.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_at_the_limit_and_frees_slots_on_drop() {
        let metrics = BulkheadMetrics::default();
        let bulkhead = Bulkhead::new("calls", 2, &metrics);
        let first = bulkhead.try_acquire().expect("a slot");
        let second = bulkhead
            .clone()
            .try_acquire()
            .expect("clones share the limit");
        assert_eq!(bulkhead.in_flight(), 2);
        assert_eq!(
            bulkhead.try_acquire().expect_err("full"),
            Full {
                bulkhead: "calls",
                limit: 2
            }
        );
        drop(first);
        let third = bulkhead.try_acquire().expect("a slot was freed");
        drop((second, third));
        assert_eq!(bulkhead.in_flight(), 0);
        let rejected = metrics
            .rejected
            .get_or_create(&BulkheadLabels { bulkhead: "calls" })
            .get();
        assert_eq!(rejected, 1);
    }
}
