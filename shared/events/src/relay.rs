//! The relay: publishes the outbox to JetStream, in order, and marks a row
//! sent only once JetStream has acknowledged it.
//!
//! A crash between the publish and the mark publishes the row again on the
//! next round: JetStream drops it (same `Nats-Msg-Id` within its duplicate
//! window), and every consumer's inbox would drop it anyway.
//!
//! On PostgreSQL, where replicas share one outbox, a round claims its rows
//! with `FOR UPDATE SKIP LOCKED` and holds them until they are marked; a
//! replica whose claim does not start at the oldest unsent row leaves the
//! round to the one that holds it, so that events leave in the order they
//! were written. On SQLite (one process) rows are read, published, then
//! marked, without holding the single writer while the broker answers.

use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use sqlx::{AnyConnection, Connection, Row};

use super::broker::Broker;
use super::metrics::{EventMetrics, PublishOutcome};
use super::outbox::Outbox;
use shared_db::{Database, placeholders};
use shared_http::health::Lifecycle;
use shared_http::{periodic, timestamp};

/// The longest wait between attempts while the broker is away.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One outbox row on its way out.
struct Pending {
    id: String,
    subject: String,
    event: String,
    traceparent: Option<String>,
}

/// What a round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Published and marked this many rows (0: the outbox was empty).
    Sent(usize),
    /// Another replica is relaying the oldest rows.
    Deferred,
}

/// Publishes one service's outbox; see the module documentation.
#[derive(Clone)]
pub struct Relay {
    db: Database,
    broker: Broker,
    outbox: Outbox,
    metrics: EventMetrics,
    service: &'static str,
}

impl Relay {
    pub fn new(
        db: Database,
        broker: Broker,
        outbox: Outbox,
        metrics: EventMetrics,
        service: &'static str,
    ) -> Self {
        Self {
            db,
            broker,
            outbox,
            metrics,
            service,
        }
    }

    /// Makes sure the service's stream exists, then relays until draining.
    pub async fn run(self, lifecycle: Lifecycle) {
        let mut backoff = Backoff::default();
        while !lifecycle.is_draining() {
            match self.broker.ensure_service_stream(self.service).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %format_args!("{e:#}"), "events stream not ready; retrying");
                    backoff.wait().await;
                }
            }
        }
        let idle = self.broker.config().relay_interval;
        let batch = self.broker.config().relay_batch;
        let linger = self.broker.config().relay_linger;
        while !lifecycle.is_draining() {
            if !self.broker.is_connected() {
                backoff.wait().await;
                continue;
            }
            match self.round().await {
                Ok(Round::Sent(n)) if n == batch => backoff.reset(),
                Ok(_) => {
                    backoff.reset();
                    let woken = tokio::time::timeout(idle, self.outbox.woken()).await;
                    // Let the commits of the next few milliseconds join this
                    // one: one round (one write to mark them) for many events.
                    if woken.is_ok() {
                        tokio::time::sleep(linger).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %format_args!("{e:#}"), "relaying events failed; backing off");
                    backoff.wait().await;
                }
            }
        }
    }

    /// Publishes the oldest unsent rows and marks those JetStream acknowledged.
    ///
    /// # Errors
    /// When the database fails; a broker that does not answer leaves the rows
    /// unsent and is an error too.
    pub async fn round(&self) -> anyhow::Result<Round> {
        self.round_marking(true).await
    }

    /// A round that stops after publishing, as a relay killed before marking
    /// its rows would: they stay unsent and are published again.
    ///
    /// # Errors
    /// As [`Relay::round`].
    #[cfg(feature = "testing")]
    pub async fn round_killed_before_marking(&self) -> anyhow::Result<Round> {
        self.round_marking(false).await
    }

    async fn round_marking(&self, mark: bool) -> anyhow::Result<Round> {
        let batch = i64::try_from(self.broker.config().relay_batch).unwrap_or(i64::MAX);
        if self.db.is_sqlite() {
            let rows = claim(&mut *self.db.read().await?, batch, "").await?;
            let sent = self.publish(&rows).await?;
            if mark {
                mark_sent(&mut *self.db.write().await?, &sent).await?;
            }
            return Ok(Round::Sent(sent.len()));
        }
        let mut conn = self.db.write().await?;
        let mut tx = conn.begin().await?;
        let rows = claim(&mut tx, batch, " FOR UPDATE SKIP LOCKED").await?;
        let Some(first) = rows.first() else {
            return Ok(Round::Sent(0));
        };
        let head: Option<String> =
            sqlx::query_scalar("SELECT MIN(id) FROM outbox WHERE sent_at IS NULL")
                .fetch_one(&mut *tx)
                .await?;
        if head.as_deref() != Some(first.id.as_str()) {
            return Ok(Round::Deferred);
        }
        let sent = self.publish(&rows).await?;
        if mark {
            mark_sent(&mut tx, &sent).await?;
            tx.commit().await?;
        }
        Ok(Round::Sent(sent.len()))
    }

    /// Publishes `rows` in order and returns the ids JetStream acknowledged,
    /// up to the first that it did not.
    async fn publish(&self, rows: &[Pending]) -> anyhow::Result<Vec<String>> {
        let jetstream = self.broker.jetstream();
        let mut acks = Vec::with_capacity(rows.len());
        for row in rows {
            let mut message = PublishMessage::build()
                .payload(row.event.clone().into())
                .message_id(&row.id)
                .header("Content-Type", "application/cloudevents+json");
            if let Some(traceparent) = &row.traceparent {
                message = message.header("traceparent", traceparent.as_str());
            }
            match jetstream.send_publish(row.subject.clone(), message).await {
                Ok(ack) => acks.push(ack),
                Err(e) => {
                    tracing::warn!(error = %e, "publishing an event failed");
                    break;
                }
            }
        }
        let mut sent = Vec::with_capacity(acks.len());
        for (row, ack) in rows.iter().zip(acks) {
            match ack.await {
                Ok(ack) => {
                    let outcome = if ack.duplicate {
                        PublishOutcome::Duplicate
                    } else {
                        PublishOutcome::Published
                    };
                    self.metrics.published(&row.subject, outcome);
                    sent.push(row.id.clone());
                }
                Err(e) => {
                    self.metrics.published(&row.subject, PublishOutcome::Failed);
                    if sent.is_empty() {
                        anyhow::bail!("the broker did not acknowledge an event: {e}");
                    }
                    break;
                }
            }
        }
        Ok(sent)
    }
}

/// The oldest unsent rows, `lock` appended to the query.
async fn claim(conn: &mut AnyConnection, batch: i64, lock: &str) -> anyhow::Result<Vec<Pending>> {
    // `lock` is one of two constants, never input.
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id, subject, event, traceparent FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1{lock}"
    )))
    .bind(batch)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Pending {
                id: row.try_get("id")?,
                subject: row.try_get("subject")?,
                event: row.try_get("event")?,
                traceparent: row.try_get("traceparent")?,
            })
        })
        .collect()
}

async fn mark_sent(conn: &mut AnyConnection, ids: &[String]) -> anyhow::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE outbox SET sent_at = $1 WHERE id IN ({})",
        placeholders(2, ids.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(timestamp::now_ms());
    for id in ids {
        query = query.bind(id);
    }
    query.execute(conn).await?;
    Ok(())
}

/// How often [`start`] refreshes the outbox metrics and prunes sent rows.
const OUTBOX_WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Starts a producing service's relay and its outbox watch on the current
/// runtime, both until draining.
pub fn start(
    db: &Database,
    broker: &Broker,
    outbox: &Outbox,
    metrics: &EventMetrics,
    service: &'static str,
    lifecycle: &Lifecycle,
) {
    let relay = Relay::new(
        db.clone(),
        broker.clone(),
        outbox.clone(),
        metrics.clone(),
        service,
    );
    actix_web::rt::spawn(relay.run(lifecycle.clone()));
    actix_web::rt::spawn(watch_outbox(
        db.clone(),
        broker.config().outbox_retention,
        metrics.clone(),
        OUTBOX_WATCH_INTERVAL,
        lifecycle.clone(),
    ));
    tracing::info!("events on: relaying the outbox");
}

/// Keeps the outbox metrics current and prunes sent rows older than
/// `EVENTS_OUTBOX_RETENTION_MS`, every `interval`, until draining.
pub async fn watch_outbox(
    db: Database,
    retention: Duration,
    metrics: EventMetrics,
    interval: Duration,
    lifecycle: Lifecycle,
) {
    periodic::every("outbox", interval, lifecycle, move || {
        let (db, metrics) = (db.clone(), metrics.clone());
        async move {
            let mut conn = db.read().await?;
            let (depth, oldest): (i64, Option<i64>) = sqlx::query_as(
                "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE sent_at IS NULL",
            )
            .fetch_one(&mut *conn)
            .await?;
            drop(conn);
            let age_ms = oldest.map_or(0, |at| timestamp::now_ms().saturating_sub(at).max(0));
            #[allow(clippy::cast_precision_loss)]
            metrics.outbox(depth, age_ms as f64 / 1000.0);
            sqlx::query("DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < $1")
                .bind(timestamp::ms_ago(retention))
                .execute(&mut *db.write().await?)
                .await?;
            Ok(())
        }
    })
    .await;
}

/// Waits that double from 100 ms up to [`MAX_BACKOFF`].
#[derive(Default)]
struct Backoff {
    next: Option<Duration>,
}

impl Backoff {
    async fn wait(&mut self) {
        let wait = self.next.unwrap_or(Duration::from_millis(100));
        self.next = Some((wait * 2).min(MAX_BACKOFF));
        tokio::time::sleep(wait).await;
    }

    fn reset(&mut self) {
        self.next = None;
    }
}
