//! Dead letters: events a consumer failed on every delivery, kept in the
//! [`DEAD_LETTER_STREAM`] under `shop.dead_letter.<consumer>`, listed and
//! replayed through the consumer's own handler (an operator fixed the cause),
//! and counted: how many each consumer has, how full the stream is.

use std::time::Duration;

use async_nats::jetstream::message::StreamMessage;
use futures::TryStreamExt;
use serde::Serialize;

use super::broker::{Broker, DEAD_LETTER_STREAM, dead_letter_subject};
use super::consumer::{Consumers, Effect};
use super::envelope::CloudEvent;
use super::metrics::EventMetrics;
use shared_http::health::Lifecycle;
use shared_http::periodic;

/// How often a consuming service counts its dead letters (they also leave
/// by replay or an operator's deletion, possibly on another replica).
const COUNTING: Duration = Duration::from_secs(15);

/// One dead letter, as listed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeadLetter {
    /// Its position in the dead-letter stream: what replay takes.
    pub sequence: u64,
    pub consumer: String,
    /// Why the last delivery failed.
    pub reason: String,
    pub deliveries: i64,
    pub dead_lettered_at: String,
    /// The event (a CloudEvent, or the raw text when it was not one).
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
}

/// Why a replay did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("there is no dead letter {0}")]
    NotFound(u64),
    #[error("the dead letter's consumer {0} is not one of this service's")]
    UnknownConsumer(String),
    #[error("the event failed again: {0}")]
    FailedAgain(String),
    #[error(transparent)]
    Broker(#[from] anyhow::Error),
}

impl Consumers {
    /// Up to `limit` dead letters of this service's consumers after `after`,
    /// oldest first.
    ///
    /// # Errors
    /// When the broker cannot be read.
    pub async fn list_dead_letters(
        &self,
        broker: &Broker,
        after: u64,
        limit: usize,
    ) -> anyhow::Result<Vec<DeadLetter>> {
        broker.ensure_dead_letter_stream().await?;
        let stream = broker.jetstream().get_stream(DEAD_LETTER_STREAM).await?;
        let mut letters = Vec::new();
        for (subscription, _) in self.iter() {
            let name = subscription.name;
            let mut next = after + 1;
            while letters.len() < limit {
                match stream
                    .direct_get_next_for_subject(dead_letter_subject(name), Some(next))
                    .await
                {
                    Ok(message) => {
                        next = message.sequence + 1;
                        letters.push(describe(name, &message));
                    }
                    Err(e)
                        if e.kind()
                            == async_nats::jetstream::stream::DirectGetErrorKind::NotFound =>
                    {
                        break;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        letters.sort_by_key(|letter| letter.sequence);
        letters.truncate(limit);
        Ok(letters)
    }

    /// Hands dead letter `sequence` to its consumer's handler again and, once
    /// handled, removes it from the dead letters.
    ///
    /// # Errors
    /// When there is no such dead letter, it is not for this service, or the
    /// handler fails again (it then stays a dead letter).
    pub async fn replay(&self, broker: &Broker, sequence: u64) -> Result<Effect, ReplayError> {
        broker.ensure_dead_letter_stream().await?;
        let stream = broker
            .jetstream()
            .get_stream(DEAD_LETTER_STREAM)
            .await
            .map_err(anyhow::Error::from)?;
        let message = stream
            .get_raw_message(sequence)
            .await
            .map_err(|_| ReplayError::NotFound(sequence))?;
        let consumer = message
            .subject
            .strip_prefix("shop.dead_letter.")
            .unwrap_or_default()
            .to_owned();
        let handler = self
            .handler(&consumer)
            .ok_or_else(|| ReplayError::UnknownConsumer(consumer.clone()))?;
        let event: CloudEvent = serde_json::from_slice(&message.payload)
            .map_err(|e| ReplayError::FailedAgain(format!("not a CloudEvent: {e}")))?;
        let effect = handler
            .handle(&event)
            .await
            .map_err(|e| ReplayError::FailedAgain(format!("{e:#}")))?;
        stream
            .delete_message(sequence)
            .await
            .map_err(anyhow::Error::from)?;
        tracing::info!(consumer, sequence, event.id = %event.id, "dead letter replayed");
        Ok(effect)
    }
}

impl Consumers {
    /// Counts the dead letters of this service's consumers, and how full the
    /// dead-letter stream is, into `metrics`: now, then every 15 s until
    /// draining.
    pub async fn count_dead_letters(
        self,
        broker: Broker,
        metrics: EventMetrics,
        lifecycle: Lifecycle,
    ) {
        periodic::every("dead letters", COUNTING, lifecycle, move || {
            let (consumers, broker, metrics) = (self.clone(), broker.clone(), metrics.clone());
            async move {
                for (subscription, _) in consumers.iter() {
                    count_dead_letters(&broker, &metrics, subscription.name).await?;
                }
                Ok(())
            }
        })
        .await;
    }
}

/// Counts the dead letters of `consumer` (the stream's count for its subject)
/// and how full the dead-letter stream is, into `metrics`.
pub(crate) async fn count_dead_letters(
    broker: &Broker,
    metrics: &EventMetrics,
    consumer: &str,
) -> anyhow::Result<()> {
    let stream = broker
        .jetstream()
        .get_stream_no_info(DEAD_LETTER_STREAM)
        .await?;
    let subject = dead_letter_subject(consumer);
    let mut subjects = stream.info_with_subjects(&subject).await?;
    let mut count = 0;
    while let Some((name, n)) = subjects.try_next().await? {
        if name == subject {
            count = n;
        }
    }
    metrics.dead_letters_kept(consumer, count);
    let info = &subjects.info;
    metrics.dead_letter_stream(info.state.bytes, info.config.max_bytes);
    Ok(())
}

fn describe(consumer: &str, message: &StreamMessage) -> DeadLetter {
    let header = |name: &str| {
        message
            .headers
            .get(name)
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default()
    };
    let event = serde_json::from_slice(&message.payload).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&message.payload).into_owned())
    });
    DeadLetter {
        sequence: message.sequence,
        consumer: consumer.to_owned(),
        reason: header("Shop-Dead-Letter-Reason"),
        deliveries: header("Shop-Deliveries").parse().unwrap_or_default(),
        dead_lettered_at: header("Shop-Dead-Lettered-At"),
        event,
    }
}
