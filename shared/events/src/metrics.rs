//! The events' metrics: one set per process, registered whether or not events
//! are on (a dashboard then shows zeros rather than "no data").

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use shared_http::metrics::{LatencyFamily, Registry, latency_family};

/// The events' metrics (counters gain `_total` on the wire).
pub mod names {
    pub const EVENTS_OUTBOX_DEPTH: &str = "events_outbox_depth";
    pub const EVENTS_OUTBOX_OLDEST_AGE: &str = "events_outbox_oldest_age_seconds";
    pub const EVENTS_PUBLISHED: &str = "events_published";
    pub const EVENTS_CONSUMED: &str = "events_consumed";
    pub const EVENTS_CONSUMER_LAG: &str = "events_consumer_lag";
    pub const EVENTS_REDELIVERIES: &str = "events_redeliveries";
    pub const EVENTS_DEAD_LETTERS: &str = "events_dead_letters";
    pub const EVENTS_DELIVERY_LATENCY: &str = "events_delivery_latency_seconds";
    pub const EVENTS_DEAD_LETTER_DEPTH: &str = "events_dead_letter_depth";
    pub const EVENTS_DEAD_LETTER_STREAM_BYTES: &str = "events_dead_letter_stream_bytes";
    pub const EVENTS_DEAD_LETTER_STREAM_MAX_BYTES: &str = "events_dead_letter_stream_max_bytes";
}

/// How a publish of one outbox row ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Stored by JetStream.
    Published,
    /// JetStream had it already (same `Nats-Msg-Id` within the window).
    Duplicate,
    /// Not acknowledged: the row stays and is published again.
    Failed,
}

impl PublishOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Published => "published",
            Self::Duplicate => "duplicate",
            Self::Failed => "failed",
        }
    }
}

/// How a consumer's handling of one delivery ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ConsumeOutcome {
    /// Its effect was committed (now, or by an earlier delivery: see the inbox).
    Handled,
    /// Handled before: the inbox had its id.
    Duplicate,
    /// Failed; it will be delivered again.
    Retried,
    /// Failed for the last time: moved to the dead letters.
    DeadLettered,
    /// Failed for the last time, and its dead letter could not be stored
    /// (broker unreachable, dead-letter stream full): it will be delivered
    /// again, and moved to the dead letters then.
    DeadLetterFailed,
}

impl ConsumeOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Handled => "handled",
            Self::Duplicate => "duplicate",
            Self::Retried => "retried",
            Self::DeadLettered => "dead_lettered",
            Self::DeadLetterFailed => "dead_letter_failed",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PublishLabels {
    r#type: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConsumedLabels {
    consumer: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConsumerLabels {
    consumer: String,
}

/// Outbox, relay and consumer metrics.
#[derive(Clone)]
pub struct EventMetrics {
    outbox_depth: Gauge,
    outbox_oldest_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    published: Family<PublishLabels, Counter>,
    consumed: Family<ConsumedLabels, Counter>,
    lag: Family<ConsumerLabels, Gauge>,
    redeliveries: Family<ConsumerLabels, Counter>,
    dead_letters: Family<ConsumerLabels, Counter>,
    delivery_latency: LatencyFamily<ConsumerLabels>,
    dead_letter_depth: Family<ConsumerLabels, Gauge>,
    dead_letter_stream_bytes: Gauge,
    dead_letter_stream_max_bytes: Gauge,
}

impl EventMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            outbox_depth: Gauge::default(),
            outbox_oldest_age: Gauge::default(),
            published: Family::default(),
            consumed: Family::default(),
            lag: Family::default(),
            redeliveries: Family::default(),
            dead_letters: Family::default(),
            delivery_latency: latency_family(),
            dead_letter_depth: Family::default(),
            dead_letter_stream_bytes: Gauge::default(),
            dead_letter_stream_max_bytes: Gauge::default(),
        };
        registry.register(
            names::EVENTS_OUTBOX_DEPTH,
            "Outbox rows not yet acknowledged by the broker",
            metrics.outbox_depth.clone(),
        );
        registry.register(
            names::EVENTS_OUTBOX_OLDEST_AGE,
            "Age of the oldest outbox row not yet acknowledged by the broker (0 when none)",
            metrics.outbox_oldest_age.clone(),
        );
        registry.register(
            names::EVENTS_PUBLISHED,
            "Outbox rows the relay tried to publish, by event type and outcome",
            metrics.published.clone(),
        );
        registry.register(
            names::EVENTS_CONSUMED,
            "Deliveries handled by a durable consumer, by consumer and outcome",
            metrics.consumed.clone(),
        );
        registry.register(
            names::EVENTS_CONSUMER_LAG,
            "Events in the stream not yet delivered to the consumer",
            metrics.lag.clone(),
        );
        registry.register(
            names::EVENTS_REDELIVERIES,
            "Deliveries of an event that had been delivered before, by consumer",
            metrics.redeliveries.clone(),
        );
        registry.register(
            names::EVENTS_DEAD_LETTERS,
            "Events moved to the dead letters after their last failed delivery, by consumer",
            metrics.dead_letters.clone(),
        );
        registry.register(
            names::EVENTS_DELIVERY_LATENCY,
            "Time from an event's commit to its handling by a consumer",
            metrics.delivery_latency.clone(),
        );
        registry.register(
            names::EVENTS_DEAD_LETTER_DEPTH,
            "Dead letters kept for a consumer of this service, waiting for replay or deletion",
            metrics.dead_letter_depth.clone(),
        );
        registry.register(
            names::EVENTS_DEAD_LETTER_STREAM_BYTES,
            "Bytes held by the dead-letter stream (every service's dead letters)",
            metrics.dead_letter_stream_bytes.clone(),
        );
        registry.register(
            names::EVENTS_DEAD_LETTER_STREAM_MAX_BYTES,
            "The dead-letter stream's size limit; at it, new dead letters are refused",
            metrics.dead_letter_stream_max_bytes.clone(),
        );
        metrics
    }

    pub(crate) fn dead_letters_kept(&self, consumer: &str, count: usize) {
        self.dead_letter_depth
            .get_or_create(&labels(consumer))
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub(crate) fn dead_letter_stream(&self, bytes: u64, max_bytes: i64) {
        self.dead_letter_stream_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.dead_letter_stream_max_bytes.set(max_bytes);
    }

    pub(crate) fn outbox(&self, depth: i64, oldest_age_seconds: f64) {
        self.outbox_depth.set(depth);
        self.outbox_oldest_age.set(oldest_age_seconds);
    }

    pub(crate) fn published(&self, event_type: &str, outcome: PublishOutcome) {
        self.published
            .get_or_create(&PublishLabels {
                r#type: event_type.to_owned(),
                outcome: outcome.label(),
            })
            .inc();
    }

    pub(crate) fn consumed(&self, consumer: &str, outcome: ConsumeOutcome) {
        self.consumed
            .get_or_create(&ConsumedLabels {
                consumer: consumer.to_owned(),
                outcome: outcome.label(),
            })
            .inc();
        if outcome == ConsumeOutcome::DeadLettered {
            self.dead_letters.get_or_create(&labels(consumer)).inc();
        }
    }

    pub(crate) fn delivered(
        &self,
        consumer: &str,
        redelivery: bool,
        pending: u64,
        latency: Option<f64>,
    ) {
        let labels = labels(consumer);
        if redelivery {
            self.redeliveries.get_or_create(&labels).inc();
        }
        self.lag
            .get_or_create(&labels)
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        if let Some(seconds) = latency {
            self.delivery_latency
                .get_or_create(&labels)
                .observe(seconds);
        }
    }
}

fn labels(consumer: &str) -> ConsumerLabels {
    ConsumerLabels {
        consumer: consumer.to_owned(),
    }
}
