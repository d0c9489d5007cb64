//! Durable consumers: an event is acknowledged only after its effect is
//! committed, and handled at most once in effect.
//!
//! JetStream delivers at least once: after a crash before the ack, after an
//! ack lost on the way, or when the relay published a row twice outside the
//! duplicate window. So a handler writes the event's id into the consuming
//! service's `inbox` table ([`Inbox::first_time`]) in the same transaction as
//! its effect, and skips the effect when the id is already there.
//!
//! A handler that fails gets the event again after a backoff
//! (`EVENTS_REDELIVERY_BACKOFF_MS`), up to `EVENTS_MAX_DELIVER` deliveries;
//! then the event is published on the consumer's dead-letter subject and,
//! once JetStream has stored that copy, terminated, so that the events behind
//! it go on. If the copy cannot be stored, the event is not terminated: it
//! comes again after a backoff and its dead letter is tried again. The
//! inbox remembers ids as long as the stream keeps events
//! ([`EventsConfig::inbox_retention`](crate::EventsConfig::inbox_retention)).
//! The consuming service's migrations create the inbox (portable SQL):
//!
//! ```sql
//! CREATE TABLE inbox (
//!     consumer   TEXT NOT NULL,
//!     event_id   TEXT NOT NULL,
//!     handled_at BIGINT NOT NULL,
//!     PRIMARY KEY (consumer, event_id)
//! );
//! CREATE INDEX inbox_handled ON inbox (handled_at);
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures::StreamExt;
use futures::future::LocalBoxFuture;
use sqlx::AnyConnection;

use super::broker::{Broker, dead_letter_subject};
use super::dead_letters::count_dead_letters;
use super::envelope::CloudEvent;
use super::metrics::{ConsumeOutcome, EventMetrics};
use shared_db::Database;
use shared_http::health::Lifecycle;
use shared_http::{periodic, telemetry, timestamp};

/// What a durable consumer reads.
#[derive(Debug, Clone, Copy)]
pub struct Subscription {
    /// The durable consumer's name, also its key in the inbox and its
    /// dead-letter subject (`shop.dead_letter.<name>`).
    pub name: &'static str,
    /// The service whose stream it reads (`pricing` reads `SHOP_PRICING`).
    pub producer: &'static str,
    /// The event type it takes, e.g. `shop.pricing.price_changed`.
    pub event_type: &'static str,
}

/// What was done with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The effect was committed now.
    Applied,
    /// The inbox had the event's id: nothing was done again.
    AlreadyHandled,
}

/// A consumer's effect. It commits the effect and [`Inbox::first_time`] in
/// one transaction, and fails (to be retried) when it cannot.
pub trait Handler: Send + Sync {
    fn handle<'a>(&'a self, event: &'a CloudEvent) -> LocalBoxFuture<'a, anyhow::Result<Effect>>;
}

/// The consuming service's record of the events it has handled.
pub struct Inbox;

impl Inbox {
    /// Records that `consumer` handled `event_id`, as part of the open
    /// transaction `tx`; `false` when it had been handled before (then the
    /// caller does nothing else and commits nothing new).
    ///
    /// # Errors
    /// When the row cannot be written.
    pub async fn first_time(
        tx: &mut AnyConnection,
        consumer: &str,
        event_id: &str,
    ) -> anyhow::Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO inbox (consumer, event_id, handled_at) VALUES ($1, $2, $3) \
             ON CONFLICT (consumer, event_id) DO NOTHING",
        )
        .bind(consumer)
        .bind(event_id)
        .bind(timestamp::now_ms())
        .execute(tx)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// Forgets handled ids older than `retention` (well past any
    /// redelivery), every `interval`, until draining.
    pub async fn prune(
        db: Database,
        retention: Duration,
        interval: Duration,
        lifecycle: Lifecycle,
    ) {
        periodic::every("inbox", interval, lifecycle, move || {
            let db = db.clone();
            async move {
                sqlx::query("DELETE FROM inbox WHERE handled_at < $1")
                    .bind(timestamp::ms_ago(retention))
                    .execute(&mut *db.write().await?)
                    .await?;
                Ok(())
            }
        })
        .await;
    }
}

/// The consumers of one service, with their handlers: started together, and
/// used to replay their dead letters.
#[derive(Clone, Default)]
pub struct Consumers {
    handlers: HashMap<&'static str, (Subscription, Arc<dyn Handler>)>,
}

impl Consumers {
    #[must_use]
    pub fn with(mut self, subscription: Subscription, handler: Arc<dyn Handler>) -> Self {
        self.handlers
            .insert(subscription.name, (subscription, handler));
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = (Subscription, Arc<dyn Handler>)> + '_ {
        self.handlers.values().map(|(s, h)| (*s, h.clone()))
    }

    pub(crate) fn handler(&self, consumer: &str) -> Option<&Arc<dyn Handler>> {
        self.handlers.get(consumer).map(|(_, h)| h)
    }

    /// Starts every consumer on the current runtime, each until draining,
    /// and the count of their dead letters (metrics).
    pub fn start(&self, broker: &Broker, metrics: &EventMetrics, lifecycle: &Lifecycle) {
        actix_web::rt::spawn(self.clone().count_dead_letters(
            broker.clone(),
            metrics.clone(),
            lifecycle.clone(),
        ));
        for (subscription, handler) in self.iter() {
            actix_web::rt::spawn(run(
                broker.clone(),
                subscription,
                handler,
                metrics.clone(),
                lifecycle.clone(),
            ));
        }
    }
}

/// The longest wait before a stopped consumer starts again.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// Runs the durable consumer `subscription` with `handler` until draining,
/// waiting for its stream to exist and reconnecting after failures.
pub async fn run(
    broker: Broker,
    subscription: Subscription,
    handler: Arc<dyn Handler>,
    metrics: EventMetrics,
    lifecycle: Lifecycle,
) {
    let mut wait = Duration::from_millis(200);
    while !lifecycle.is_draining() {
        match consume(
            &broker,
            subscription,
            handler.as_ref(),
            &metrics,
            &lifecycle,
        )
        .await
        {
            Ok(()) => return,
            Err(e) => {
                // At start-up the producer's stream may not exist yet: say
                // so quietly until the waits reach their longest.
                if wait < MAX_WAIT {
                    tracing::info!(consumer = subscription.name, error = %format_args!("{e:#}"),
                        "events consumer not running yet; trying again");
                } else {
                    tracing::warn!(consumer = subscription.name, error = %format_args!("{e:#}"),
                        "events consumer stopped; starting it again");
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_WAIT);
            }
        }
    }
}

/// The most events a consumer holds unacknowledged: the one being handled
/// and those waiting out a redelivery backoff. More than the few events that
/// may be in backoff at once, so that those do not stall the rest.
const MAX_ACK_PENDING: i64 = 32;
/// Events fetched per pull request: one. Handled one at a time, any more
/// would wait in the client while JetStream's ack wait runs for them (a
/// handler slower than the ack wait would have them all delivered again);
/// the one being handled is kept alive by [`in_progress`]. The price is a
/// round trip per event.
const PULL_BATCH: usize = 1;

async fn consume(
    broker: &Broker,
    subscription: Subscription,
    handler: &dyn Handler,
    metrics: &EventMetrics,
    lifecycle: &Lifecycle,
) -> anyhow::Result<()> {
    broker.ensure_dead_letter_stream().await?;
    let stream_name = super::broker::stream_name(subscription.producer);
    let stream = broker
        .jetstream()
        .get_stream(&stream_name)
        .await
        .map_err(|e| anyhow::anyhow!("the stream {stream_name} is not there yet: {e}"))?;
    let config = consumer_config(&stream, subscription, broker.config()).await?;
    // Creates the consumer, or brings an existing one to these settings.
    let consumer = stream
        .create_consumer(config)
        .await
        .map_err(|e| anyhow::anyhow!("creating the consumer {}: {e}", subscription.name))?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(PULL_BATCH)
        .messages()
        .await?;
    tracing::info!(consumer = subscription.name, stream = %stream_name, "consuming events");
    while let Some(message) = messages.next().await {
        if lifecycle.is_draining() {
            return Ok(());
        }
        deliver(broker, subscription, handler, metrics, message?).await?;
    }
    anyhow::bail!("the message stream ended")
}

/// The durable consumer's settings. JetStream itself never gives up on an
/// event (`max_deliver` -1): this module counts the deliveries and ends an
/// event only once its dead letter is stored, so a dead letter that cannot be
/// stored (broker gone, dead-letter stream full) leaves the event to come
/// again. Where a consumer starts cannot change once it exists: an existing
/// one keeps its own; a new one starts where the inbox's memory begins.
async fn consumer_config(
    stream: &async_nats::jetstream::stream::Stream,
    subscription: Subscription,
    settings: &crate::EventsConfig,
) -> anyhow::Result<pull::Config> {
    use async_nats::jetstream::context::ConsumerInfoErrorKind;
    let deliver_policy = match stream.consumer_info(subscription.name).await {
        Ok(info) => info.config.deliver_policy,
        Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => DeliverPolicy::ByStartTime {
            start_time: settings.first_delivery_since(timestamp::now_ms()),
        },
        Err(e) => anyhow::bail!("reading the consumer {}: {e}", subscription.name),
    };
    Ok(pull::Config {
        durable_name: Some(subscription.name.to_owned()),
        filter_subject: subscription.event_type.to_owned(),
        deliver_policy,
        ack_policy: AckPolicy::Explicit,
        ack_wait: settings.ack_wait,
        max_deliver: -1,
        max_ack_pending: MAX_ACK_PENDING,
        ..Default::default()
    })
}

/// Handles one delivery: ack after the effect, retry later on failure, dead
/// letter after the last delivery.
async fn deliver(
    broker: &Broker,
    subscription: Subscription,
    handler: &dyn Handler,
    metrics: &EventMetrics,
    message: async_nats::jetstream::Message,
) -> anyhow::Result<()> {
    let info = message.info().map_err(|e| anyhow::anyhow!("{e}"))?;
    let (delivered, pending) = (info.delivered, info.pending);
    let parsed: Result<CloudEvent, _> = serde_json::from_slice(&message.payload);
    let latency = parsed
        .as_ref()
        .ok()
        .and_then(CloudEvent::time_ms)
        .map(|at| {
            #[allow(clippy::cast_precision_loss)]
            let seconds = (timestamp::now_ms() - at).max(0) as f64 / 1000.0;
            seconds
        });
    metrics.delivered(subscription.name, delivered > 1, pending, latency);

    let span = tracing::info_span!(
        "event",
        consumer = subscription.name,
        event.id = tracing::field::Empty
    );
    if let Some(traceparent) = message.headers.as_ref().and_then(|h| h.get("traceparent")) {
        telemetry::adopt_traceparent(&span, traceparent.as_str());
    }
    let result = match &parsed {
        Ok(event) => {
            span.record("event.id", event.id.as_str());
            let _entered = span.enter();
            in_progress(&message, broker.config().ack_wait, handler.handle(event)).await
        }
        Err(e) => Err(anyhow::anyhow!("not a CloudEvent: {e}")),
    };
    let (outcome, kind) = settle(broker, subscription, &message, delivered, result).await;
    metrics.consumed(subscription.name, outcome);
    message
        .ack_with(kind)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if outcome == ConsumeOutcome::DeadLettered {
        // The count moves now rather than at the next periodic count.
        if let Err(e) = count_dead_letters(broker, metrics, subscription.name).await {
            tracing::warn!(consumer = subscription.name, error = %format_args!("{e:#}"),
                "counting the dead letters failed");
        }
    }
    Ok(())
}

/// What becomes of a delivery after its handling: acknowledged, delivered
/// again after a backoff, or (the last delivery) dead-lettered and ended,
/// and only then: a dead letter that cannot be stored leaves the event to
/// come again.
async fn settle(
    broker: &Broker,
    subscription: Subscription,
    message: &async_nats::jetstream::Message,
    delivered: i64,
    result: anyhow::Result<Effect>,
) -> (ConsumeOutcome, AckKind) {
    let backoff = broker.config().backoff_after(delivered);
    match result {
        Ok(Effect::Applied) => (ConsumeOutcome::Handled, AckKind::Ack),
        Ok(Effect::AlreadyHandled) => (ConsumeOutcome::Duplicate, AckKind::Ack),
        Err(e) if delivered >= broker.config().max_deliver => {
            tracing::error!(consumer = subscription.name, deliveries = delivered,
                error = %format_args!("{e:#}"), "an event failed its last delivery; moving it to the dead letters");
            match dead_letter(broker, subscription, message, delivered, &e).await {
                Ok(()) => (ConsumeOutcome::DeadLettered, AckKind::Term),
                Err(store) => {
                    tracing::error!(consumer = subscription.name, deliveries = delivered,
                        retry_in_ms = timestamp::millis(backoff), error = %format_args!("{store:#}"),
                        "the dead letter could not be stored; the event will be delivered again");
                    (
                        ConsumeOutcome::DeadLetterFailed,
                        AckKind::Nak(Some(backoff)),
                    )
                }
            }
        }
        Err(e) => {
            tracing::warn!(consumer = subscription.name, deliveries = delivered,
                retry_in_ms = timestamp::millis(backoff), error = %format_args!("{e:#}"),
                "handling an event failed; it will be delivered again");
            (ConsumeOutcome::Retried, AckKind::Nak(Some(backoff)))
        }
    }
}

/// Runs `work` (a handler) and, while it runs, tells JetStream every half ack
/// wait that `message` is in progress, so that a slow handler (a downstream
/// call timing out and retried) is not given the same event a second time.
async fn in_progress<T>(
    message: &async_nats::jetstream::Message,
    ack_wait: Duration,
    work: impl std::future::Future<Output = T>,
) -> T {
    let mut work = std::pin::pin!(work);
    // Never a zero period (tokio's interval refuses one).
    let every = (ack_wait / 2).max(Duration::from_millis(10));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = ticker.tick() => {
                // Best effort: if it is lost, the event comes again and the
                // inbox makes that harmless.
                let _ = message.ack_with(AckKind::Progress).await;
            }
        }
    }
}

/// Publishes `message` on the consumer's dead-letter subject, with why and
/// where it came from, and waits for JetStream to store it.
async fn dead_letter(
    broker: &Broker,
    subscription: Subscription,
    message: &async_nats::jetstream::Message,
    deliveries: i64,
    error: &anyhow::Error,
) -> anyhow::Result<()> {
    let info = message.info().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        "Shop-Dead-Letter-Reason",
        one_line(&format!("{error:#}")).as_str(),
    );
    headers.insert("Shop-Original-Subject", message.subject.as_str());
    headers.insert(
        "Shop-Original-Sequence",
        info.stream_sequence.to_string().as_str(),
    );
    headers.insert("Shop-Deliveries", deliveries.to_string().as_str());
    headers.insert(
        "Shop-Dead-Lettered-At",
        timestamp::to_rfc3339(timestamp::now_ms()).as_str(),
    );
    headers.insert(
        "Nats-Msg-Id",
        format!(
            "{}:{}:{}",
            subscription.name, info.stream, info.stream_sequence
        )
        .as_str(),
    );
    if let Some(traceparent) = message.headers.as_ref().and_then(|h| h.get("traceparent")) {
        headers.insert("traceparent", traceparent.as_str());
    }
    broker
        .jetstream()
        .publish_with_headers(
            dead_letter_subject(subscription.name),
            headers,
            message.payload.clone(),
        )
        .await?
        .await?;
    Ok(())
}

/// `text` on one line, at most 500 characters (a header value).
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(500)
        .collect()
}
