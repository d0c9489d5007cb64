//! The events plumbing against a real `nats-server` and a real store (SQLite,
//! or PostgreSQL when `TEST_DATABASE_URL` is set): the relay, the two layers
//! that make a second publish harmless, the broker going away, consumers that
//! crash or meet a poison event, and replicas sharing one outbox.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::LocalBoxFuture;
use serde_json::json;
use shared_db::Database;
use shared_events::EventsConfig;
use shared_events::consumer::{self, Consumers, Effect};
use shared_events::relay::{Relay, Round};
use shared_events::{Broker, CloudEvent, EventMetrics, Handler, Inbox, Outbox, Subscription};
use shared_testkit::eventually;
use tokio::sync::Notify;

/// How long a condition below may take to hold.
const PATIENCE: Duration = Duration::from_secs(20);
use shared_http::health::Lifecycle;
use shared_http::metrics::{MetricsRegistry, Registry};
use shared_testkit::TestDatabase;
use shared_testkit::nats::NatsServer;
use shared_testkit::nats_cluster::NatsCluster;
use sqlx::Connection;

/// The tables a producing and consuming service create (the documented DDL),
/// and `effects`, what the test handler does.
const SCHEMA: &str = "
CREATE TABLE outbox (
    id          TEXT PRIMARY KEY,
    subject     TEXT NOT NULL,
    event       TEXT NOT NULL,
    traceparent TEXT,
    created_at  BIGINT NOT NULL,
    sent_at     BIGINT
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;
CREATE TABLE inbox (
    consumer   TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    handled_at BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
CREATE TABLE effects (event_id TEXT NOT NULL);
";

const SERVICE: &str = "plumbing";
const STREAM: &str = "SHOP_PLUMBING";
const TYPE: &str = "shop.plumbing.happened";

struct Fixture {
    nats: NatsServer,
    db: Database,
    _database: TestDatabase,
    outbox: Outbox,
    metrics: EventMetrics,
    registry: MetricsRegistry,
    broker: Broker,
    relay: Relay,
}

impl Fixture {
    async fn new() -> Self {
        Self::with(|config| config).await
    }

    async fn with(adjust: impl FnOnce(EventsConfig) -> EventsConfig) -> Self {
        let nats = NatsServer::start().await;
        let database = TestDatabase::create("events").await;
        let db = Database::connect(&database.config).await.expect("database");
        sqlx::raw_sql(SCHEMA)
            .execute(&mut *db.write().await.expect("connection"))
            .await
            .expect("schema");
        sqlx::raw_sql(include_str!("../migrations/outbox_lease.sql"))
            .execute(&mut *db.write().await.expect("connection"))
            .await
            .expect("the lease table");
        let mut registry = Registry::default();
        let metrics = EventMetrics::register(&mut registry);
        let config = adjust(nats.events_config());
        let broker = Broker::connect(&config, SERVICE)
            .await
            .expect("connect")
            .expect("on");
        broker.ensure_service_stream(SERVICE).await.expect("stream");
        let outbox = Outbox::on();
        let relay = Relay::new(
            db.clone(),
            broker.clone(),
            outbox.clone(),
            metrics.clone(),
            SERVICE,
        );
        Self {
            relay,
            nats,
            db,
            _database: database,
            outbox,
            metrics,
            registry: MetricsRegistry::new(registry),
            broker,
        }
    }

    /// The fixture's relay (one name in the lease, one memory of the last
    /// row stored), as a service process has one.
    fn relay(&self) -> Relay {
        self.relay.clone()
    }

    /// A relay of its own, as another replica's.
    fn another_relay(&self) -> Relay {
        Relay::new(
            self.db.clone(),
            self.broker.clone(),
            self.outbox.clone(),
            self.metrics.clone(),
            SERVICE,
        )
    }

    /// Commits one change with its event, about `subject`; returns the event.
    async fn commit(&self, subject: &str) -> CloudEvent {
        let event = CloudEvent::new(SERVICE, TYPE, subject, &json!({"n": subject})).expect("event");
        let mut conn = self.db.write().await.expect("connection");
        let mut tx = conn.begin().await.expect("begin");
        self.outbox.append(&mut tx, &event).await.expect("append");
        tx.commit().await.expect("commit");
        self.outbox.committed();
        event
    }

    async fn unsent(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")
            .fetch_one(&mut *self.db.read().await.expect("connection"))
            .await
            .expect("count")
    }

    async fn effects(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT event_id FROM effects")
            .fetch_all(&mut *self.db.read().await.expect("connection"))
            .await
            .expect("effects")
    }

    /// The value of the sample `name{labels}` (labels as rendered, sorted as
    /// the registry renders them), 0 when absent.
    fn metric(&self, sample: &str) -> f64 {
        self.registry
            .render()
            .lines()
            .find_map(|line| {
                line.strip_prefix(sample)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or(0.0)
    }

    async fn ids_in_stream(&self) -> Vec<String> {
        self.nats
            .messages(STREAM)
            .await
            .into_iter()
            .map(|m| m.payload["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

#[actix_web::test]
async fn the_relay_publishes_committed_events_in_order_with_their_id_and_trace() {
    let f = Fixture::new().await;
    let mut sent = Vec::new();
    for n in 0..5 {
        sent.push(f.commit(&format!("s-{n}")).await);
    }
    // A change rolled back: its event must never leave.
    {
        let event = CloudEvent::new(SERVICE, TYPE, "rolled-back", &json!({})).expect("event");
        let mut conn = f.db.write().await.expect("connection");
        let mut tx = conn.begin().await.expect("begin");
        f.outbox.append(&mut tx, &event).await.expect("append");
        tx.rollback().await.expect("rollback");
    }
    assert_eq!(f.relay().round().await.expect("round"), Round::Sent(5));
    assert_eq!(f.relay().round().await.expect("round"), Round::Sent(0));
    let messages = f.nats.messages(STREAM).await;
    assert_eq!(messages.len(), 5);
    for (message, event) in messages.iter().zip(&sent) {
        assert_eq!(message.subject, TYPE);
        assert_eq!(message.payload, serde_json::to_value(event).expect("json"));
        assert_eq!(message.headers.get("Nats-Msg-Id"), Some(&event.id));
        let traceparent = message.headers.get("traceparent").expect("traceparent");
        assert_eq!(traceparent.len(), 55, "{traceparent}");
    }
    assert_eq!(f.unsent().await, 0);
    assert_eq!(
        f.metric(&format!(
            "events_published_total{{type=\"{TYPE}\",outcome=\"published\"}}"
        )),
        5.0
    );
}

#[actix_web::test]
async fn a_relay_killed_before_marking_publishes_again_and_jetstream_drops_the_copy() {
    let f = Fixture::new().await;
    let event = f.commit("once").await;
    f.relay()
        .round_killed_before_marking()
        .await
        .expect("round");
    assert_eq!(f.unsent().await, 1, "not marked: the row is still unsent");
    assert_eq!(f.relay().round().await.expect("round"), Round::Sent(1));
    assert_eq!(f.ids_in_stream().await, vec![event.id]);
    assert_eq!(
        f.metric(&format!(
            "events_published_total{{type=\"{TYPE}\",outcome=\"duplicate\"}}"
        )),
        1.0
    );
    assert_eq!(f.unsent().await, 0);
}

/// Rows stored but never marked that wait longer than JetStream's duplicate
/// window (their relay killed, the replica that takes over starved of
/// database connections, or the database away): JetStream no longer knows
/// their ids, so the next relay reads the stream back, marks the rows it
/// holds, and publishes only the rest. One copy of each, in order.
#[actix_web::test]
async fn rows_stored_but_unmarked_past_the_duplicate_window_are_not_stored_again() {
    let f = Fixture::with(|config| EventsConfig {
        relay_lease: Duration::from_millis(500),
        duplicate_window: Duration::from_secs(1),
        ..config
    })
    .await;
    let mut ids = f.commit_many(5).await;
    let killed = f.another_relay();
    assert_eq!(
        killed.round_killed_before_marking().await.expect("round"),
        Round::Sent(5)
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ids.extend(f.commit_many(2).await);
    assert_eq!(f.relay().round().await.expect("round"), Round::Sent(7));
    assert_eq!(f.ids_in_stream().await, ids, "each once, in order");
    assert_eq!(f.unsent().await, 0);
    let count = |outcome: &str| {
        f.metric(&format!(
            "events_published_total{{type=\"{TYPE}\",outcome=\"{outcome}\"}}"
        ))
    };
    assert_eq!((count("published"), count("duplicate")), (7.0, 5.0));
}

#[actix_web::test]
async fn with_the_broker_down_the_outbox_grows_and_catches_up_in_order() {
    let mut f = Fixture::new().await;
    let lifecycle = Lifecycle::default();
    actix_web::rt::spawn(f.relay().run(lifecycle.clone()));
    actix_web::rt::spawn(shared_events::relay::watch_outbox(
        f.db.clone(),
        Duration::from_secs(3600),
        f.metrics.clone(),
        Duration::from_millis(50),
        lifecycle.clone(),
    ));
    f.nats.stop();
    let mut ids = Vec::new();
    for n in 0..50 {
        ids.push(f.commit(&format!("s-{n}")).await.id);
    }
    eventually("the outbox depth metric", PATIENCE, async || {
        f.metric("events_outbox_depth") == 50.0
    })
    .await;
    assert_eq!(f.unsent().await, 50);
    eventually("the oldest unsent row's age", PATIENCE, async || {
        f.metric("events_outbox_oldest_age_seconds") > 0.0
    })
    .await;
    f.nats.resume().await;
    eventually("the relay to catch up", PATIENCE, async || {
        f.unsent().await == 0
    })
    .await;
    assert_eq!(
        f.ids_in_stream().await,
        ids,
        "every event once, in the order written"
    );
    eventually("the depth metric back to 0", PATIENCE, async || {
        f.metric("events_outbox_depth") == 0.0
    })
    .await;
    assert_eq!(f.metric("events_outbox_oldest_age_seconds"), 0.0);
    lifecycle.start_draining();
}

/// Records each event's id in `effects`, once, with the inbox; fails on
/// subjects starting with "poison" until `cured`; blocks forever after its
/// commit while `hang_after_commit` is set (a crash before the ack).
#[derive(Clone)]
struct Recorder {
    db: Database,
    cured: Arc<AtomicBool>,
    hang_after_commit: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

const CONSUMER: &str = "plumbing-recorder";

impl Handler for Recorder {
    fn handle<'a>(&'a self, event: &'a CloudEvent) -> LocalBoxFuture<'a, anyhow::Result<Effect>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            anyhow::ensure!(
                !event.subject.starts_with("poison") || self.cured.load(Ordering::SeqCst),
                "this event can never be handled"
            );
            let mut conn = self.db.write().await?;
            let mut tx = conn.begin().await?;
            if !Inbox::first_time(&mut tx, CONSUMER, &event.id).await? {
                return Ok(Effect::AlreadyHandled);
            }
            sqlx::query("INSERT INTO effects (event_id) VALUES ($1)")
                .bind(&event.id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            drop(conn);
            if self.hang_after_commit.swap(false, Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            Ok(Effect::Applied)
        })
    }
}

impl Fixture {
    fn recorder(&self) -> Recorder {
        Recorder {
            db: self.db.clone(),
            cured: Arc::default(),
            hang_after_commit: Arc::default(),
            calls: Arc::default(),
        }
    }

    fn consume(
        &self,
        recorder: &Recorder,
        lifecycle: &Lifecycle,
    ) -> actix_web::rt::task::JoinHandle<()> {
        actix_web::rt::spawn(consumer::run(
            self.broker.clone(),
            SUBSCRIPTION,
            Arc::new(recorder.clone()),
            self.metrics.clone(),
            lifecycle.clone(),
        ))
    }

    /// Publishes `event` directly, under a message id of its own (as a
    /// second publish outside JetStream's duplicate window would arrive).
    async fn publish_copy(&self, event: &CloudEvent, copy: &str) {
        let payload = serde_json::to_vec(event).expect("json");
        let message = async_nats::jetstream::message::PublishMessage::build()
            .payload(payload.into())
            .message_id(format!("{}-{copy}", event.id));
        self.broker
            .jetstream()
            .send_publish(TYPE, message)
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
}

const SUBSCRIPTION: Subscription = Subscription {
    name: CONSUMER,
    producer: SERVICE,
    event_type: TYPE,
};

#[actix_web::test]
async fn a_redelivered_event_changes_nothing() {
    let f = Fixture::new().await;
    let recorder = f.recorder();
    let lifecycle = Lifecycle::default();
    f.consume(&recorder, &lifecycle);
    let event = CloudEvent::new(SERVICE, TYPE, "twice", &json!({})).expect("event");
    f.publish_copy(&event, "a").await;
    f.publish_copy(&event, "b").await;
    let sample = format!("events_consumed_total{{consumer=\"{CONSUMER}\",outcome=\"duplicate\"}}");
    eventually("the second copy", PATIENCE, async || {
        f.metric(&sample) == 1.0
    })
    .await;
    assert_eq!(f.effects().await, vec![event.id]);
    assert_eq!(
        f.metric(&format!(
            "events_consumed_total{{consumer=\"{CONSUMER}\",outcome=\"handled\"}}"
        )),
        1.0
    );
    lifecycle.start_draining();
}

#[actix_web::test]
async fn a_consumer_that_dies_after_its_effect_and_before_its_ack_changes_nothing_on_redelivery() {
    let f = Fixture::new().await;
    let recorder = f.recorder();
    recorder.hang_after_commit.store(true, Ordering::SeqCst);
    let lifecycle = Lifecycle::default();
    let first = f.consume(&recorder, &lifecycle);
    let event = CloudEvent::new(SERVICE, TYPE, "crash", &json!({})).expect("event");
    f.publish_copy(&event, "only").await;
    eventually("the effect", PATIENCE, async || {
        f.effects().await.len() == 1
    })
    .await;
    // Killed between its commit and its ack.
    first.abort();
    let _ = first.await;
    f.consume(&recorder, &lifecycle);
    let sample = format!("events_consumed_total{{consumer=\"{CONSUMER}\",outcome=\"duplicate\"}}");
    eventually("the redelivery after the ack wait", PATIENCE, async || {
        f.metric(&sample) == 1.0
    })
    .await;
    assert_eq!(f.effects().await, vec![event.id], "the effect once");
    assert!(
        f.metric(&format!(
            "events_redeliveries_total{{consumer=\"{CONSUMER}\"}}"
        )) >= 1.0
    );
    lifecycle.start_draining();
}

#[actix_web::test]
async fn a_poison_event_becomes_a_dead_letter_without_blocking_the_rest_and_can_be_replayed() {
    let f = Fixture::new().await;
    let recorder = f.recorder();
    let lifecycle = Lifecycle::default();
    f.consume(&recorder, &lifecycle);
    let poison = CloudEvent::new(SERVICE, TYPE, "poison-1", &json!({})).expect("event");
    let good = CloudEvent::new(SERVICE, TYPE, "good", &json!({})).expect("event");
    f.publish_copy(&poison, "p").await;
    f.publish_copy(&good, "g").await;
    eventually("the event behind the poison", PATIENCE, async || {
        f.effects().await.contains(&good.id)
    })
    .await;
    let dead = format!("events_dead_letters_total{{consumer=\"{CONSUMER}\"}}");
    eventually("the dead letter", PATIENCE, async || f.metric(&dead) == 1.0).await;
    // Three deliveries (EVENTS_MAX_DELIVER in the test settings), no more.
    assert_eq!(recorder.calls.load(Ordering::SeqCst), 3 + 1);

    let consumers = Consumers::default().with(SUBSCRIPTION, Arc::new(recorder.clone()));
    let letters = consumers
        .list_dead_letters(&f.broker, 0, 10)
        .await
        .expect("list");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].consumer, CONSUMER);
    assert_eq!(letters[0].deliveries, 3);
    assert!(
        letters[0].reason.contains("can never be handled"),
        "{}",
        letters[0].reason
    );
    assert_eq!(letters[0].event["id"], poison.id.as_str());
    let sequence = letters[0].sequence;

    assert!(
        consumers.replay(&f.broker, sequence).await.is_err(),
        "still failing: stays a dead letter"
    );
    assert_eq!(
        consumers
            .list_dead_letters(&f.broker, 0, 10)
            .await
            .expect("list")
            .len(),
        1
    );
    recorder.cured.store(true, Ordering::SeqCst);
    assert_eq!(
        consumers
            .replay(&f.broker, sequence)
            .await
            .expect("replayed"),
        Effect::Applied
    );
    assert!(f.effects().await.contains(&poison.id));
    assert!(
        consumers
            .list_dead_letters(&f.broker, 0, 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        consumers.replay(&f.broker, sequence).await.is_err(),
        "gone once replayed"
    );
    lifecycle.start_draining();
}

/// Whether the tests run on PostgreSQL (`TEST_DATABASE_URL`: the PostgreSQL
/// pass of scripts/test.sh); a test of replicas sharing one outbox says so
/// and does nothing on SQLite, where each process has its own file.
fn in_the_postgresql_pass() -> bool {
    let on = std::env::var("TEST_DATABASE_URL").is_ok_and(|url| !url.is_empty());
    if !on {
        eprintln!("runs in the PostgreSQL pass (TEST_DATABASE_URL)");
    }
    on
}

/// Replicas share one outbox only on PostgreSQL (on SQLite each process has
/// its own file), so this runs in the PostgreSQL pass.
#[actix_web::test]
async fn two_relays_on_one_postgresql_outbox_publish_each_event_once_in_order() {
    if !in_the_postgresql_pass() {
        return;
    }
    let f = Fixture::with(|config| EventsConfig {
        relay_batch: 16,
        ..config
    })
    .await;
    let mut registry = Registry::default();
    let other_metrics = EventMetrics::register(&mut registry);
    let other_registry = MetricsRegistry::new(registry);
    let other = Relay::new(
        f.db.clone(),
        f.broker.clone(),
        f.outbox.clone(),
        other_metrics,
        SERVICE,
    );
    let lifecycle = Lifecycle::default();
    actix_web::rt::spawn(f.relay().run(lifecycle.clone()));
    actix_web::rt::spawn(other.run(lifecycle.clone()));
    let mut ids = Vec::new();
    for n in 0..200 {
        ids.push(f.commit(&format!("s-{n}")).await.id);
    }
    eventually("both relays to drain the outbox", PATIENCE, async || {
        f.unsent().await == 0
    })
    .await;
    assert_eq!(f.ids_in_stream().await, ids);
    let published = |text: String| -> (f64, f64) {
        let value = |outcome: &str| {
            let sample = format!("events_published_total{{type=\"{TYPE}\",outcome=\"{outcome}\"}}");
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(sample.as_str())
                        .and_then(|r| r.trim().parse().ok())
                })
                .unwrap_or(0.0)
        };
        (value("published"), value("duplicate"))
    };
    let (a, a_dup) = published(f.registry.render());
    let (b, b_dup) = published(other_registry.render());
    eprintln!("relay A published {a}, relay B {b}");
    assert_eq!(
        a + b,
        200.0,
        "each event published by exactly one relay ({a} + {b})"
    );
    assert_eq!(a_dup + b_dup, 0.0, "no event published twice");
    lifecycle.start_draining();
}

#[actix_web::test]
async fn a_consumer_reports_its_lag_and_each_delivery_s_latency() {
    let f = Fixture::new().await;
    for n in 0..5 {
        let event =
            CloudEvent::new(SERVICE, TYPE, &format!("queued-{n}"), &json!({})).expect("event");
        f.publish_copy(&event, "only").await;
    }
    // The first delivery hangs after its effect: four are still waiting.
    let recorder = f.recorder();
    recorder.hang_after_commit.store(true, Ordering::SeqCst);
    let lifecycle = Lifecycle::default();
    let first = f.consume(&recorder, &lifecycle);
    let lag = format!("events_consumer_lag{{consumer=\"{CONSUMER}\"}}");
    eventually("the lag behind the first event", PATIENCE, async || {
        f.metric(&lag) == 4.0
    })
    .await;
    first.abort();
    let _ = first.await;
    f.consume(&recorder, &lifecycle);
    eventually("every event handled", PATIENCE, async || {
        f.effects().await.len() == 5
    })
    .await;
    eventually("no lag", PATIENCE, async || f.metric(&lag) == 0.0).await;
    // Six deliveries: the hung one again (after the ack wait), then four.
    let count = format!("events_delivery_latency_seconds_count{{consumer=\"{CONSUMER}\"}}");
    eventually("six latencies", PATIENCE, async || f.metric(&count) == 6.0).await;
    lifecycle.start_draining();
}

/// `NATS_URL` as a comma list (the servers of one cluster): the client is
/// given each, and reaches the one that answers.
#[actix_web::test]
async fn a_comma_list_of_servers_connects_through_the_one_that_answers() {
    let nats = NatsServer::start().await;
    let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let down = format!(
        "nats://127.0.0.1:{}",
        unused.local_addr().expect("addr").port()
    );
    drop(unused);
    let config = EventsConfig {
        nats_url: Some(format!("{down}, {}", nats.url())),
        ..nats.events_config()
    };
    let broker = Broker::connect(&config, SERVICE)
        .await
        .expect("a comma list is a valid NATS_URL")
        .expect("on");
    broker
        .ensure_service_stream(SERVICE)
        .await
        .expect("the stream, through the server that answers");
    assert!(broker.is_connected());
}

/// A handler that never succeeds and, at its last delivery (and the one
/// after), stops until the test lets it go on: the moment a dead letter is
/// about to be stored.
#[derive(Clone, Default)]
struct HeldAtLastDelivery {
    calls: Arc<AtomicUsize>,
    /// Signalled when the call number `hold_at` (and each one after) begins.
    reached: Arc<tokio::sync::Notify>,
    go_on: Arc<tokio::sync::Notify>,
    hold_at: usize,
}

impl HeldAtLastDelivery {
    fn at(delivery: usize) -> Self {
        Self {
            hold_at: delivery,
            ..Self::default()
        }
    }
}

impl Handler for HeldAtLastDelivery {
    fn handle<'a>(&'a self, _: &'a CloudEvent) -> LocalBoxFuture<'a, anyhow::Result<Effect>> {
        Box::pin(async move {
            let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if call >= self.hold_at {
                self.reached.notify_one();
                self.go_on.notified().await;
            }
            anyhow::bail!("this event can never be handled")
        })
    }
}

impl Fixture {
    fn consume_with(
        &self,
        handler: &HeldAtLastDelivery,
        lifecycle: &Lifecycle,
    ) -> actix_web::rt::task::JoinHandle<()> {
        actix_web::rt::spawn(consumer::run(
            self.broker.clone(),
            SUBSCRIPTION,
            Arc::new(handler.clone()),
            self.metrics.clone(),
            lifecycle.clone(),
        ))
    }

    /// The ids of the events in the dead letters.
    async fn dead_letter_ids(&self) -> Vec<String> {
        self.nats
            .messages(shared_events::broker::DEAD_LETTER_STREAM)
            .await
            .into_iter()
            .map(|m| m.payload["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

#[actix_web::test]
async fn an_event_whose_dead_letter_is_refused_comes_again_and_is_dead_lettered_once() {
    let f = Fixture::new().await;
    let max_deliver = usize::try_from(f.broker.config().max_deliver).expect("small");
    let handler = HeldAtLastDelivery::at(max_deliver);
    let lifecycle = Lifecycle::default();
    f.consume_with(&handler, &lifecycle);
    let poison = CloudEvent::new(SERVICE, TYPE, "poison", &json!({})).expect("event");
    f.publish_copy(&poison, "only").await;

    // Its last delivery: the dead-letter stream is gone when it fails.
    handler.reached.notified().await;
    let jetstream = f.nats.jetstream().await;
    jetstream
        .delete_stream(shared_events::broker::DEAD_LETTER_STREAM)
        .await
        .expect("dead letters refused");
    handler.go_on.notify_one();

    // Not lost: JetStream delivers it again.
    eventually("the event to come again", PATIENCE, async || {
        handler.calls.load(Ordering::SeqCst) > max_deliver
    })
    .await;
    let failed =
        format!("events_consumed_total{{consumer=\"{CONSUMER}\",outcome=\"dead_letter_failed\"}}");
    assert_eq!(f.metric(&failed), 1.0);
    f.broker
        .ensure_dead_letter_stream()
        .await
        .expect("dead letters taken again");
    handler.go_on.notify_one();

    let dead = format!("events_dead_letters_total{{consumer=\"{CONSUMER}\"}}");
    eventually("the dead letter", PATIENCE, async || f.metric(&dead) == 1.0).await;
    assert_eq!(f.dead_letter_ids().await, vec![poison.id.clone()]);
    lifecycle.start_draining();
}

#[actix_web::test]
async fn an_event_whose_broker_stops_as_it_is_dead_lettered_ends_in_the_dead_letters_once() {
    let mut f = Fixture::new().await;
    let max_deliver = usize::try_from(f.broker.config().max_deliver).expect("small");
    let handler = HeldAtLastDelivery::at(max_deliver);
    let lifecycle = Lifecycle::default();
    f.consume_with(&handler, &lifecycle);
    let poison = CloudEvent::new(SERVICE, TYPE, "poison", &json!({})).expect("event");
    f.publish_copy(&poison, "only").await;

    // Its last delivery fails while the broker is away.
    handler.reached.notified().await;
    f.nats.stop();
    handler.go_on.notify_one();
    let failed =
        format!("events_consumed_total{{consumer=\"{CONSUMER}\",outcome=\"dead_letter_failed\"}}");
    eventually("the dead letter to fail", PATIENCE, async || {
        f.metric(&failed) >= 1.0
    })
    .await;
    f.nats.resume().await;
    // From now on every delivery fails at once, and is dead-lettered.
    let releaser = {
        let handler = handler.clone();
        actix_web::rt::spawn(async move {
            loop {
                handler.reached.notified().await;
                handler.go_on.notify_one();
            }
        })
    };

    let dead = format!("events_dead_letters_total{{consumer=\"{CONSUMER}\"}}");
    eventually("the dead letter", PATIENCE, async || f.metric(&dead) >= 1.0).await;
    assert_eq!(f.dead_letter_ids().await, vec![poison.id.clone()]);
    releaser.abort();
    lifecycle.start_draining();
}

#[actix_web::test]
async fn a_durable_consumer_of_an_earlier_version_is_brought_to_the_current_settings() {
    let f = Fixture::new().await;
    // As the previous version created it: JetStream stopped at max_deliver,
    // and a prefetch of a thousand.
    let stream = f
        .broker
        .jetstream()
        .get_stream(STREAM)
        .await
        .expect("stream");
    stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some(CONSUMER.to_owned()),
            filter_subject: TYPE.to_owned(),
            deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::All,
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            max_deliver: 3,
            ..Default::default()
        })
        .await
        .expect("old consumer");
    let recorder = f.recorder();
    let lifecycle = Lifecycle::default();
    f.consume(&recorder, &lifecycle);
    let event = f.commit("after-upgrade").await;
    f.relay().round().await.expect("round");
    eventually("the event handled", PATIENCE, async || {
        f.effects().await == vec![event.id.clone()]
    })
    .await;
    let config = stream.consumer_info(CONSUMER).await.expect("info").config;
    assert_eq!(config.max_deliver, -1, "the deliveries are counted here");
    assert!(config.max_ack_pending > 0 && config.max_ack_pending <= 32);
    assert_eq!(
        config.deliver_policy,
        async_nats::jetstream::consumer::DeliverPolicy::All,
        "where it started stays"
    );
    lifecycle.start_draining();
}

#[actix_web::test]
async fn a_durable_consumer_created_anew_starts_where_its_inbox_s_memory_begins() {
    let f = Fixture::new().await;
    let forgotten = CloudEvent::new(SERVICE, TYPE, "long-ago", &json!({})).expect("event");
    f.publish_copy(&forgotten, "only").await;
    // The consuming service keeps events (and so inbox ids) for a second;
    // the producer's stream keeps them for days.
    let consuming = EventsConfig {
        max_age: Duration::from_secs(1),
        duplicate_window: Duration::from_secs(1),
        ..f.broker.config().clone()
    };
    let broker = Broker::connect(&consuming, "consuming")
        .await
        .expect("connect")
        .expect("on");
    let published_at = forgotten.time_ms().expect("time");
    eventually(
        "the first event to be older than the inbox's memory",
        PATIENCE,
        async || shared_http::timestamp::now_ms() - published_at > 1_500,
    )
    .await;
    let lifecycle = Lifecycle::default();
    actix_web::rt::spawn(consumer::run(
        broker,
        SUBSCRIPTION,
        Arc::new(f.recorder()),
        f.metrics.clone(),
        lifecycle.clone(),
    ));
    let recent = CloudEvent::new(SERVICE, TYPE, "recent", &json!({})).expect("event");
    f.publish_copy(&recent, "only").await;
    eventually("the recent event handled", PATIENCE, async || {
        !f.effects().await.is_empty()
    })
    .await;
    assert_eq!(f.effects().await, vec![recent.id], "not the forgotten one");
    lifecycle.start_draining();
}

#[actix_web::test]
async fn the_dead_letters_never_age_out_and_a_full_stream_refuses_new_ones() {
    let f = Fixture::new().await;
    // As the previous version created it: the events' 7 days and discard old.
    f.broker
        .ensure_stream(
            shared_events::broker::DEAD_LETTER_STREAM,
            vec!["shop.dead_letter.>".to_owned()],
        )
        .await
        .expect("old dead-letter stream");
    f.broker
        .ensure_dead_letter_stream()
        .await
        .expect("brought to the settings");
    let mut stream = f
        .broker
        .jetstream()
        .get_stream(shared_events::broker::DEAD_LETTER_STREAM)
        .await
        .expect("stream");
    let config = stream.info().await.expect("info").config.clone();
    assert_eq!(config.max_age, Duration::ZERO, "no age limit");
    assert_eq!(
        config.discard,
        async_nats::jetstream::stream::DiscardPolicy::New
    );
    assert_eq!(config.max_bytes, f.broker.config().dead_letter_max_bytes);
}

/// Fills the dead-letter stream with another consumer's dead letters, each
/// size down to 100 bytes (less than any dead letter), until it refuses
/// that; returns how many it took.
async fn fill_dead_letters(broker: &Broker) -> usize {
    let mut stored = 0;
    for size in [100_000, 10_000, 1_000, 100] {
        for _ in 0..100 {
            let ack = broker
                .jetstream()
                .publish("shop.dead_letter.other", vec![b'x'; size].into())
                .await
                .expect("sent");
            if ack.await.is_err() {
                break;
            }
            stored += 1;
        }
    }
    stored
}

#[actix_web::test]
async fn a_full_dead_letter_stream_keeps_what_it_holds_and_the_new_dead_letter_waits_for_room() {
    let f = Fixture::with(|config| EventsConfig {
        dead_letter_max_bytes: 1 << 20,
        ..config
    })
    .await;
    f.broker
        .ensure_dead_letter_stream()
        .await
        .expect("dead letters");
    let held = fill_dead_letters(&f.broker).await;
    assert!(held > 0);
    let recorder = f.recorder();
    let lifecycle = Lifecycle::default();
    f.consume(&recorder, &lifecycle);
    let poison = CloudEvent::new(SERVICE, TYPE, "poison-full", &json!({})).expect("event");
    f.publish_copy(&poison, "only").await;
    let failed =
        format!("events_consumed_total{{consumer=\"{CONSUMER}\",outcome=\"dead_letter_failed\"}}");
    eventually("the dead letter refused twice", PATIENCE, async || {
        f.metric(&failed) >= 2.0
    })
    .await;
    assert_eq!(f.dead_letter_ids().await.len(), held, "nothing old dropped");

    // An operator deletes the other consumer's dead letters: room again.
    f.broker
        .jetstream()
        .get_stream(shared_events::broker::DEAD_LETTER_STREAM)
        .await
        .expect("stream")
        .purge()
        .filter("shop.dead_letter.other")
        .await
        .expect("purged");
    let dead = format!("events_dead_letters_total{{consumer=\"{CONSUMER}\"}}");
    eventually("the dead letter", PATIENCE, async || f.metric(&dead) == 1.0).await;
    assert_eq!(f.dead_letter_ids().await, vec![poison.id.clone()]);
    lifecycle.start_draining();
}

#[actix_web::test]
async fn the_dead_letter_depth_moves_with_the_dead_letters_kept() {
    let f = Fixture::new().await;
    let recorder = f.recorder();
    let consumers = Consumers::default().with(SUBSCRIPTION, Arc::new(recorder.clone()));
    let lifecycle = Lifecycle::default();
    consumers.start(&f.broker, &f.metrics, &lifecycle);
    let depth = format!("events_dead_letter_depth{{consumer=\"{CONSUMER}\"}}");
    let max_bytes = f.broker.config().dead_letter_max_bytes;
    eventually("the first count", PATIENCE, async || {
        f.metric("events_dead_letter_stream_max_bytes") == max_bytes as f64
    })
    .await;
    assert_eq!(f.metric(&depth), 0.0);
    for n in 0..2 {
        let poison =
            CloudEvent::new(SERVICE, TYPE, &format!("poison-{n}"), &json!({})).expect("event");
        f.publish_copy(&poison, "only").await;
    }
    eventually("two dead letters counted", PATIENCE, async || {
        f.metric(&depth) == 2.0
    })
    .await;
    assert!(f.metric("events_dead_letter_stream_bytes") > 0.0);

    // One replayed (the cause fixed): the periodic count sees it gone.
    recorder.cured.store(true, Ordering::SeqCst);
    let letters = consumers
        .list_dead_letters(&f.broker, 0, 10)
        .await
        .expect("list");
    consumers
        .replay(&f.broker, letters[0].sequence)
        .await
        .expect("replayed");
    eventually("one dead letter counted", PATIENCE * 2, async || {
        f.metric(&depth) == 1.0
    })
    .await;
    lifecycle.start_draining();
}

/// The recorder, taking longer than the ack wait over its first event (a
/// downstream call timing out and retried).
struct SlowFirst {
    inner: Recorder,
    took: Duration,
    first: AtomicBool,
}

impl Handler for SlowFirst {
    fn handle<'a>(&'a self, event: &'a CloudEvent) -> LocalBoxFuture<'a, anyhow::Result<Effect>> {
        Box::pin(async move {
            if !self.first.swap(true, Ordering::SeqCst) {
                tokio::time::sleep(self.took).await;
            }
            self.inner.handle(event).await
        })
    }
}

#[actix_web::test]
async fn a_handler_slower_than_the_ack_wait_is_not_given_its_event_again() {
    let f = Fixture::new().await;
    let handler = SlowFirst {
        inner: f.recorder(),
        took: f.broker.config().ack_wait * 5 / 2,
        first: AtomicBool::new(false),
    };
    let lifecycle = Lifecycle::default();
    actix_web::rt::spawn(consumer::run(
        f.broker.clone(),
        SUBSCRIPTION,
        Arc::new(handler),
        f.metrics.clone(),
        lifecycle.clone(),
    ));
    let slow = CloudEvent::new(SERVICE, TYPE, "slow", &json!({})).expect("event");
    f.publish_copy(&slow, "only").await;
    let next = CloudEvent::new(SERVICE, TYPE, "next", &json!({})).expect("event");
    f.publish_copy(&next, "only").await;
    eventually("both handled", PATIENCE, async || {
        f.effects().await.len() == 2
    })
    .await;
    let handled = format!("events_consumed_total{{consumer=\"{CONSUMER}\",outcome=\"handled\"}}");
    eventually("both acknowledged", PATIENCE, async || {
        f.metric(&handled) == 2.0
    })
    .await;
    let redeliveries = format!("events_redeliveries_total{{consumer=\"{CONSUMER}\"}}");
    assert_eq!(f.metric(&redeliveries), 0.0, "delivered once each");
    lifecycle.start_draining();
}

impl Fixture {
    /// Commits `count` events in transactions of up to 500 (a backlog, fast);
    /// returns their ids in outbox order.
    async fn commit_many(&self, count: usize) -> Vec<String> {
        let mut ids = Vec::with_capacity(count);
        let mut conn = self.db.write().await.expect("connection");
        for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
            let mut tx = conn.begin().await.expect("begin");
            for n in chunk {
                let event = CloudEvent::new(SERVICE, TYPE, &format!("s-{n}"), &json!({"n": n}))
                    .expect("event");
                self.outbox.append(&mut tx, &event).await.expect("append");
                ids.push(event.id);
            }
            tx.commit().await.expect("commit");
        }
        ids
    }
}

/// Drains a 5,000-row outbox and prints how long it took (a figure for the
/// README, not an assertion): every row once, in outbox order.
#[actix_web::test]
async fn a_backlog_of_five_thousand_events_drains_once_in_order() {
    let f = Fixture::new().await;
    let ids = f.commit_many(5000).await;
    let lifecycle = Lifecycle::default();
    let started = std::time::Instant::now();
    actix_web::rt::spawn(f.relay().run(lifecycle.clone()));
    eventually("the backlog to drain", PATIENCE, async || {
        f.unsent().await == 0
    })
    .await;
    eprintln!("drained 5000 events in {:?}", started.elapsed());
    assert_eq!(f.ids_in_stream().await, ids);
    lifecycle.start_draining();
}

/// The broker is killed (SIGKILL) in the middle of a large batch and started
/// again on the same storage and port, three times: what it had not stored
/// when killed is stored after what it had, and nothing sent on the new
/// connection overtakes a row lost with the old one, so the stream holds
/// every row once, in outbox order.
#[actix_web::test]
async fn a_broker_killed_mid_batch_leaves_every_event_once_in_order() {
    let mut f = Fixture::with(|config| EventsConfig {
        relay_batch: 2000,
        ..config
    })
    .await;
    let ids = f.commit_many(6000).await;
    let lifecycle = Lifecycle::default();
    actix_web::rt::spawn(f.relay().run(lifecycle.clone()));
    // Three kills, each one as soon as the stream has grown past a mark:
    // watched closely, since on loopback a batch is stored within milliseconds.
    for mark in [300, 2300, 4300] {
        let jetstream = f.nats.jetstream().await;
        loop {
            if let Ok(mut stream) = jetstream.get_stream(STREAM).await
                && stream
                    .info()
                    .await
                    .is_ok_and(|info| info.state.messages >= mark)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        f.nats.stop();
        f.nats.resume().await;
    }
    eventually(
        "the relay to catch up",
        Duration::from_secs(60),
        async || f.unsent().await == 0,
    )
    .await;
    let stored = f.ids_in_stream().await;
    assert_eq!(stored.len(), ids.len(), "every event once");
    assert!(
        stored == ids,
        "in outbox order: {}",
        first_difference(&stored, &ids)
    );
    lifecycle.start_draining();
}

/// Where two id lists part, for a readable failure.
fn first_difference(stored: &[String], expected: &[String]) -> String {
    match stored.iter().zip(expected).position(|(a, b)| a != b) {
        Some(at) => format!(
            "position {at}: stored {:?}, expected {:?}",
            &stored[at..(at + 3).min(stored.len())],
            &expected[at..(at + 3).min(expected.len())]
        ),
        None => "the same".to_owned(),
    }
}

/// Waits (polling closely) until `stream` holds at least `count` messages:
/// up to a minute, as long as the relay's catch-up may take, since a
/// cluster electing its leader on a busy machine takes its time.
async fn stream_reaches(jetstream: &async_nats::jetstream::Context, stream: &str, count: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut stream) = jetstream.get_stream(stream).await
            && stream
                .info()
                .await
                .is_ok_and(|info| info.state.messages >= count)
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stream never held {count}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// On a three-node JetStream cluster (streams of three replicas) the
/// stream's leader moves three times during relaying, then is killed and
/// started again: every row is in the stream once, in outbox order.
#[actix_web::test]
async fn leader_changes_on_a_jetstream_cluster_leave_every_event_once_in_order() {
    let mut cluster = NatsCluster::start().await;
    let config = cluster.events_config();
    let f = Fixture::with(|_| EventsConfig {
        relay_batch: 3000,
        ..config
    })
    .await;
    let ids = f.commit_many(9000).await;
    let lifecycle = Lifecycle::default();
    actix_web::rt::spawn(f.relay().run(lifecycle.clone()));
    let jetstream = cluster.jetstream().await;
    // Each move early in a batch of 3,000: the pipeline is still in flight.
    for mark in [200, 3200, 6200] {
        stream_reaches(&jetstream, STREAM, mark).await;
        assert!(cluster.step_down(STREAM).await, "the leader stepped down");
    }
    stream_reaches(&jetstream, STREAM, 8000).await;
    let leader = cluster.stream_leader(STREAM).await.expect("a leader");
    cluster.node(leader).stop();
    cluster.node(leader).resume().await;
    eventually(
        "the relay to catch up",
        Duration::from_secs(60),
        async || f.unsent().await == 0,
    )
    .await;
    let stored: Vec<String> = cluster
        .messages(STREAM)
        .await
        .into_iter()
        .map(|m| m.payload["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(stored.len(), ids.len(), "every event once");
    assert!(
        stored == ids,
        "in outbox order: {}",
        first_difference(&stored, &ids)
    );
    lifecycle.start_draining();
}

/// A relay frozen mid-round (it took the lease and read its rows, and gets no
/// further while frozen, as a SIGSTOPped replica) does not stop the outbox:
/// its lease lapses and the other relay drains it, in order. Thawed, the
/// frozen one marks nothing: the lease is no longer its own. Runs in the
/// PostgreSQL pass, where replicas share one outbox.
#[actix_web::test]
async fn a_relay_frozen_mid_round_on_postgresql_leaves_the_outbox_to_the_other() {
    if !in_the_postgresql_pass() {
        return;
    }
    // A duplicate window the freeze outlasts: JetStream would store the
    // frozen relay's round again, so it must send nothing once thawed.
    let f = Fixture::with(|config| EventsConfig {
        relay_batch: 16,
        relay_lease: Duration::from_millis(500),
        duplicate_window: Duration::from_secs(1),
        ..config
    })
    .await;
    let mut ids = f.commit_many(100).await;
    let (claimed, thawed) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let frozen = actix_web::rt::spawn({
        let (relay, claimed, thawed) = (f.another_relay(), claimed.clone(), thawed.clone());
        async move { relay.round_frozen_after_claim(&claimed, &thawed).await }
    });
    claimed.notified().await;
    let lifecycle = Lifecycle::default();
    actix_web::rt::spawn(f.relay().run(lifecycle.clone()));
    for n in 0..20 {
        ids.push(f.commit(&format!("later-{n}")).await.id);
    }
    eventually(
        "the other relay to drain the outbox",
        PATIENCE,
        async || f.unsent().await == 0,
    )
    .await;
    assert_eq!(f.ids_in_stream().await, ids);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    thawed.notify_one();
    let round = frozen.await.expect("the frozen round ends");
    assert_eq!(round.expect("round"), Round::Deferred, "it marked nothing");
    assert_eq!(
        f.ids_in_stream().await,
        ids,
        "it sent nothing past its lease"
    );
    lifecycle.start_draining();
}

/// Rows stored but not marked (a relay killed before marking), then a broker
/// restart: the next round republishes them, JetStream answers duplicates
/// (it checks `Nats-Msg-Id` before the expected last id), and the rows after
/// them, chained to the last of them, are stored in the same round: the
/// stream's last id came back from its storage. A relay whose own last row
/// is no longer the stream's last (another published since) is refused at its
/// first row and starts over unchained.
#[actix_web::test]
async fn republished_rows_are_duplicates_and_the_chain_goes_on_after_a_broker_restart() {
    // A short lease: on PostgreSQL the two relays below take turns.
    let mut f = Fixture::with(|config| EventsConfig {
        relay_lease: Duration::from_millis(100),
        ..config
    })
    .await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(f.commit(&format!("s-{n}")).await.id);
    }
    let killed = f.another_relay();
    assert_eq!(
        killed.round_killed_before_marking().await.expect("round"),
        Round::Sent(3)
    );
    f.nats.stop();
    f.nats.resume().await;
    for n in 3..5 {
        ids.push(f.commit(&format!("s-{n}")).await.id);
    }
    let relay = f.relay();
    eventually("the relay back on the broker", PATIENCE, async || {
        relay
            .round()
            .await
            .is_ok_and(|round| round == Round::Sent(5))
    })
    .await;
    assert_eq!(f.ids_in_stream().await, ids);
    let count = |outcome: &str| {
        f.metric(&format!(
            "events_published_total{{type=\"{TYPE}\",outcome=\"{outcome}\"}}"
        ))
    };
    assert_eq!((count("published"), count("duplicate")), (5.0, 3.0));
    // `killed` last saw the third row stored; the stream has moved on.
    ids.push(f.commit("s-5").await.id);
    eventually("the first relay's round", PATIENCE, async || {
        killed.round().await.expect("round") == Round::Sent(1)
    })
    .await;
    assert_eq!(f.ids_in_stream().await, ids);
}
