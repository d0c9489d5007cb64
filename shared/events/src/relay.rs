//! The relay: publishes the outbox to JetStream, in order, and marks a row
//! sent only once JetStream has acknowledged it.
//!
//! A crash between the publish and the mark publishes the row again on the
//! next round: JetStream drops it (same `Nats-Msg-Id` within its duplicate
//! window), and every consumer's inbox would drop it anyway.
//!
//! Order under failure. A round pipelines its rows (sends them all, then
//! awaits the acks), and each row after the first carries
//! `Nats-Expected-Last-Msg-Id: <the row before it>`: JetStream stores a row
//! only right after the one before it, so when one is lost (a broker restart,
//! a leader change) every later row of the round is refused rather than
//! stored ahead of it. The relay marks the acknowledged prefix and the next
//! round starts again at the first row not acknowledged. A row that was
//! stored after all comes back as a duplicate (JetStream checks `Nats-Msg-Id`
//! before the expected last id), and the chain carries on from it.
//!
//! Replicas sharing one outbox (PostgreSQL) take turns through a lease (the
//! `outbox_lease` row: owner, expiry), taken or renewed in a statement of its
//! own before each round: no database lock is held while the broker answers,
//! and a frozen or cut-off replica's lease lapses after
//! `EVENTS_RELAY_LEASE_MS`, when another carries on. A relay marks rows only
//! while it is still the lease's owner. It also chains its first row of a
//! round to the last row it saw stored: a relay that wakes up after another
//! took over is refused by JetStream at that first row, and publishes nothing.
//! On SQLite (one process) there is no lease.
//!
//! Past the duplicate window. JetStream remembers ids for
//! `EVENTS_DUPLICATE_WINDOW_MS`; a row stored by a relay that stopped before
//! marking it (killed, frozen, starved of database connections, its database
//! away) and published again later than that would be stored twice. So a
//! relay without a chain of its own (just started, after a failure, or after
//! another published) that finds rows unsent for more than half the window
//! reads the stream back from the oldest of them, marks those it holds and
//! publishes only the rest.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::time::Instant;

mod stored;

use super::broker::Broker;
use super::metrics::{EventMetrics, PublishOutcome};
use super::outbox::Outbox;
use shared_db::{Database, placeholders};
use shared_http::health::Lifecycle;
use shared_http::{periodic, timestamp};

/// How long before it was written a row's event may have been stored, by
/// the broker's clock (clocks differ between hosts).
const STORED_MARGIN: Duration = Duration::from_secs(5);

/// The longest wait between attempts while the broker is away.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One outbox row on its way out.
struct Pending {
    id: String,
    subject: String,
    event: String,
    traceparent: Option<String>,
    /// When the row was written (ms since the Unix epoch).
    created_at: i64,
}

/// What a round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Published and marked this many rows (0: the outbox was empty).
    Sent(usize),
    /// Another replica is relaying the outbox (it holds the lease), or took
    /// over while this one was publishing.
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
    /// This relay's name in the lease.
    owner: String,
    /// The id of the last row this relay saw stored at the end of a round
    /// without failures: its next round's first row is chained to it.
    last_stored: Arc<Mutex<Option<String>>>,
}

/// Where a round stops on its way, for the tests of a relay that freezes.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
enum Stop<'a> {
    Never,
    /// After publishing, before marking (a relay killed there).
    BeforeMarking,
    /// After taking the lease and reading the rows: signal the first, wait
    /// for the second, then go on (a relay frozen there).
    AfterClaim(&'a Notify, &'a Notify),
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
            owner: uuid::Uuid::new_v4().to_string(),
            last_stored: Arc::default(),
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
        self.round_stopping(Stop::Never).await
    }

    /// A round that stops after publishing, as a relay killed before marking
    /// its rows would: they stay unsent and are published again.
    ///
    /// # Errors
    /// As [`Relay::round`].
    #[cfg(feature = "testing")]
    pub async fn round_killed_before_marking(&self) -> anyhow::Result<Round> {
        self.round_stopping(Stop::BeforeMarking).await
    }

    /// A round that freezes once it has claimed its rows: it notifies
    /// `claimed`, waits for `thawed`, then publishes and marks what it may.
    ///
    /// # Errors
    /// As [`Relay::round`].
    #[cfg(feature = "testing")]
    pub async fn round_frozen_after_claim(
        &self,
        claimed: &Notify,
        thawed: &Notify,
    ) -> anyhow::Result<Round> {
        self.round_stopping(Stop::AfterClaim(claimed, thawed)).await
    }

    async fn round_stopping(&self, stop: Stop<'_>) -> anyhow::Result<Round> {
        let shared = !self.db.is_sqlite();
        // The lease first, the rows after: rows read before it could be
        // stale by the time this relay may publish them. It is held until
        // `held_until` by this process's clock, measured from before it was
        // asked for, so never past its expiry in the database.
        let held_until = shared.then(|| Instant::now() + self.broker.config().relay_lease);
        if shared && !self.take_lease().await? {
            return Ok(Round::Deferred);
        }
        let batch = i64::try_from(self.broker.config().relay_batch).unwrap_or(i64::MAX);
        let rows = unsent(&mut *self.db.read().await?, batch).await?;
        if rows.is_empty() {
            return Ok(Round::Sent(0));
        }
        if let Stop::AfterClaim(claimed, thawed) = stop {
            claimed.notify_one();
            thawed.notified().await;
        }
        // A relay frozen (or starved) past its lease sends nothing: another
        // may have taken over and published these rows already.
        if lapsed(held_until) {
            return Ok(Round::Deferred);
        }
        let owner = shared.then_some(self.owner.as_str());
        let after = self.last_stored().take();
        let (rows, sequence, settled) = match after {
            Some(_) => (rows, None, 0),
            None => match self.fresh_chain(rows, owner).await? {
                Some(fresh) => fresh,
                None => return Ok(Round::Deferred),
            },
        };
        let first = match (&after, sequence) {
            (Some(after), _) => Some(Chain::AfterId(after)),
            (None, Some(sequence)) => Some(Chain::AfterSequence(sequence)),
            (None, None) => None,
        };
        let Some(sent) = self.publish(&rows, first, held_until).await? else {
            // Another relay published since this one's last round. Once more
            // from the lease: if this relay still holds it (or holds it again)
            // the other has stopped, and the round starts afresh, unchained
            // (`last_stored` is now empty, so this recurses at most once).
            return Box::pin(self.round_stopping(stop)).await;
        };
        if matches!(stop, Stop::BeforeMarking) {
            return Ok(Round::Sent(settled + sent.len()));
        }
        if !mark_sent(&mut *self.db.write().await?, &sent, owner).await? {
            return Ok(Round::Deferred);
        }
        Ok(Round::Sent(settled + sent.len()))
    }

    /// Where a round starts when this relay has no row of its own to chain
    /// its first row to (it has just started, failed, or another relay
    /// published since): the rows left to publish, the stream sequence the
    /// first must follow (if any), and how many rows were found stored
    /// already and marked.
    /// `None` when the lease passed to another relay meanwhile.
    ///
    /// Rows unsent for more than half the duplicate window may have been
    /// stored by a relay that stopped before marking them (killed, frozen,
    /// starved of database connections, its database away) longer ago than
    /// JetStream remembers their ids, and would be stored twice: the stream
    /// is read back from the oldest of them, and the rows it holds are marked
    /// instead of published again. Otherwise replicas sharing an outbox
    /// chain the first row to where the stream is now: a relay frozen with
    /// its round queued in the client (past the lapse check) is refused when
    /// it thaws, whoever published meanwhile.
    async fn fresh_chain(
        &self,
        rows: Vec<Pending>,
        owner: Option<&str>,
    ) -> anyhow::Result<Option<(Vec<Pending>, Option<u64>, usize)>> {
        let config = self.broker.config();
        let doubtful = timestamp::ms_ago(config.duplicate_window / 2);
        let oldest = rows
            .iter()
            .map(|row| row.created_at)
            .min()
            .unwrap_or(i64::MAX);
        if oldest > doubtful {
            let sequence = match owner {
                Some(_) => Some(self.last_sequence().await?),
                None => None,
            };
            return Ok(Some((rows, sequence, 0)));
        }
        let margin = i64::try_from(STORED_MARGIN.as_millis()).unwrap_or(i64::MAX);
        let from = OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(oldest.saturating_sub(margin)) * 1_000_000,
        )?;
        let wanted = rows.iter().map(|row| row.id.as_str()).collect();
        let stream = super::broker::stream_name(self.service);
        let stored = stored::stored_since(self.broker.jetstream(), &stream, from, &wanted).await?;
        let (found, rest): (Vec<Pending>, Vec<Pending>) = rows
            .into_iter()
            .partition(|row| stored.ids.contains(&row.id));
        if !found.is_empty() {
            tracing::info!(
                found = found.len(),
                "rows published before but never marked are in the stream already: marked, not published again"
            );
            let ids: Vec<String> = found.iter().map(|row| row.id.clone()).collect();
            if !mark_sent(&mut *self.db.write().await?, &ids, owner).await? {
                return Ok(None);
            }
            for row in &found {
                self.metrics
                    .published(&row.subject, PublishOutcome::Duplicate);
            }
        }
        Ok(Some((rest, Some(stored.last_sequence), found.len())))
    }

    fn last_stored(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.last_stored
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the outbox's lease, or renews this relay's own; false while
    /// another relay holds it.
    async fn take_lease(&self) -> anyhow::Result<bool> {
        let now = timestamp::now_ms();
        let lease = i64::try_from(self.broker.config().relay_lease.as_millis()).unwrap_or(i64::MAX);
        let taken = sqlx::query(
            "INSERT INTO outbox_lease (name, owner, expires_at) VALUES ('relay', $1, $2) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE outbox_lease.owner = excluded.owner OR outbox_lease.expires_at < $3",
        )
        .bind(&self.owner)
        .bind(now.saturating_add(lease))
        .bind(now)
        .execute(&mut *self.db.write().await?)
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    /// Publishes `rows` in order, each chained to the one before it and the
    /// first as `first` says (when given), and returns the ids JetStream
    /// acknowledged, up to the first it did not. `None` when JetStream
    /// refused the first row because the stream moved on past `first`.
    /// Nothing more is sent once the lease lapses (`held_until`).
    async fn publish(
        &self,
        rows: &[Pending],
        first: Option<Chain<'_>>,
        held_until: Option<Instant>,
    ) -> anyhow::Result<Option<Vec<String>>> {
        let mut sent = Vec::with_capacity(rows.len());
        let mut rest = rows;
        if let (Some(chain), Some((first, tail))) = (first, rows.split_first()) {
            // Confirmed alone before the rest is sent: if the stream moved
            // on, nothing else of this round goes out.
            match self.send(first, Some(chain)).await?.await {
                Ok(ack) => self.acknowledged(first, ack.duplicate, &mut sent),
                Err(e)
                    if matches!(
                        e.kind(),
                        PublishErrorKind::WrongLastMessageId | PublishErrorKind::WrongLastSequence
                    ) =>
                {
                    tracing::info!("the events stream moved on since this relay's last round");
                    return Ok(None);
                }
                Err(e) => return Err(self.failed(first, &e)),
            }
            rest = tail;
        }
        let mut acks: Vec<PublishAckFuture> = Vec::with_capacity(rest.len());
        let mut previous = sent.last().cloned();
        for row in rest {
            if lapsed(held_until) {
                tracing::warn!(
                    "the relay's lease lapsed mid-round; leaving the rest to the next round"
                );
                break;
            }
            match self
                .send(row, previous.as_deref().map(Chain::AfterId))
                .await
            {
                Ok(ack) => acks.push(ack),
                Err(e) => {
                    tracing::warn!(error = %format_args!("{e:#}"), "publishing an event failed");
                    break;
                }
            }
            previous = Some(row.id.clone());
        }
        let whole = acks.len() == rest.len();
        for (row, ack) in rest.iter().zip(acks) {
            match ack.await {
                Ok(ack) => self.acknowledged(row, ack.duplicate, &mut sent),
                Err(e) => {
                    let e = self.failed(row, &e);
                    if sent.is_empty() {
                        return Err(e);
                    }
                    return Ok(Some(sent));
                }
            }
        }
        if whole {
            *self.last_stored() = sent.last().cloned();
        }
        Ok(Some(sent))
    }

    /// The sequence of the last message in this service's stream.
    async fn last_sequence(&self) -> anyhow::Result<u64> {
        let name = super::broker::stream_name(self.service);
        // `get_stream` reads the stream's info: one request, no second one.
        let stream = self.broker.jetstream().get_stream(&name).await?;
        Ok(stream.cached_info().state.last_sequence)
    }

    /// Sends `row`, chained as `chain` says when given.
    async fn send(
        &self,
        row: &Pending,
        chain: Option<Chain<'_>>,
    ) -> anyhow::Result<PublishAckFuture> {
        let mut message = PublishMessage::build()
            .payload(row.event.clone().into())
            .message_id(&row.id)
            .header("Content-Type", "application/cloudevents+json");
        match chain {
            Some(Chain::AfterId(after)) => message = message.expected_last_message_id(after),
            Some(Chain::AfterSequence(last)) => message = message.expected_last_sequence(last),
            None => {}
        }
        if let Some(traceparent) = &row.traceparent {
            message = message.header("traceparent", traceparent.as_str());
        }
        let ack = self
            .broker
            .jetstream()
            .send_publish(row.subject.clone(), message)
            .await?;
        Ok(ack)
    }

    fn acknowledged(&self, row: &Pending, duplicate: bool, sent: &mut Vec<String>) {
        let outcome = if duplicate {
            PublishOutcome::Duplicate
        } else {
            PublishOutcome::Published
        };
        self.metrics.published(&row.subject, outcome);
        sent.push(row.id.clone());
    }

    fn failed(&self, row: &Pending, e: &dyn std::fmt::Display) -> anyhow::Error {
        self.metrics.published(&row.subject, PublishOutcome::Failed);
        anyhow::anyhow!("the broker did not acknowledge an event: {e}")
    }
}

/// What JetStream must find last in the stream before it stores a row.
#[derive(Clone, Copy)]
enum Chain<'a> {
    /// The row with this id (the row before it in this relay's order).
    AfterId(&'a str),
    /// The message with this stream sequence (where the stream was when
    /// this relay's round began).
    AfterSequence(u64),
}

/// Whether a lease held until `held_until` has lapsed (never, without one).
fn lapsed(held_until: Option<Instant>) -> bool {
    held_until.is_some_and(|until| Instant::now() >= until)
}

/// The oldest unsent rows, at most `batch`.
async fn unsent(conn: &mut AnyConnection, batch: i64) -> anyhow::Result<Vec<Pending>> {
    let rows = sqlx::query(
        "SELECT id, subject, event, traceparent, created_at FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1",
    )
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
                created_at: row.try_get("created_at")?,
            })
        })
        .collect()
}

/// Marks `ids` sent; with an `owner`, only while that relay holds the lease.
/// False when the lease had passed to another relay (nothing marked).
async fn mark_sent(
    conn: &mut AnyConnection,
    ids: &[String],
    owner: Option<&str>,
) -> anyhow::Result<bool> {
    if ids.is_empty() {
        return Ok(true);
    }
    let first_id = if owner.is_some() { 3 } else { 2 };
    let mut sql = format!(
        "UPDATE outbox SET sent_at = $1 WHERE id IN ({})",
        placeholders(first_id, ids.len())
    );
    if owner.is_some() {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM outbox_lease WHERE name = 'relay' AND owner = $2)",
        );
    }
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(timestamp::now_ms());
    if let Some(owner) = owner {
        query = query.bind(owner.to_owned());
    }
    for id in ids {
        query = query.bind(id);
    }
    let marked = query.execute(conn).await?.rows_affected();
    Ok(owner.is_none() || marked > 0)
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
