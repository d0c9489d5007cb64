//! Pricing's event, published through the outbox to a real nats-server: one
//! per price change, valid against its schema, none for a price set to what
//! it was, none lost while the broker is away, none doubled by a relay
//! killed between publishing and marking, and no outbox rows at all while
//! events are off.
//!
//! "Nothing more was published" is shown with a marker: the relay publishes
//! in commit order, so once a last change's event is in the stream, any
//! event an earlier request wrongly produced is there too.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shared::config::EventsConfig;
use shared::events::Outbox;
use shared::testing::TestResponse;
use shared::testing::nats::{NatsServer, StoredMessage, assert_matches_schema};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

const STREAM: &str = "SHOP_PRICING";
const PRICE_CHANGED: &str = "shop.pricing.price_changed";

fn schema() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(format!("{PRICE_CHANGED}.schema.json"))
}

/// Each message is a valid `price_changed`, stored under its own id
/// (`Nats-Msg-Id`) with a trace context, and no id is stored twice.
fn assert_valid_and_distinct(messages: &[StoredMessage]) {
    let mut ids = BTreeSet::new();
    for message in messages {
        let event = &message.payload;
        assert_eq!(message.subject, PRICE_CHANGED);
        assert_matches_schema(&schema(), event);
        let id = event["id"].as_str().expect("an id");
        assert_eq!(
            message.headers.get("Nats-Msg-Id").map(String::as_str),
            Some(id)
        );
        let traceparent = message.headers.get("traceparent").expect("traceparent");
        assert_eq!(traceparent.split('-').count(), 4, "{traceparent}");
        assert!(ids.insert(id.to_owned()), "{id} stored twice");
    }
}

async fn put_price(app: &TestApp, sku: &str, base_price: f64, discount: u64) -> TestResponse {
    let body = json!({"base_price": base_price, "discount_percent": discount});
    app.client.put_json(&format!("/price/{sku}"), &body).await
}

async fn events_app(nats: &NatsServer) -> TestApp {
    let events = nats.events_config();
    spawn_app_with(move |c| c.events = events).await
}

/// Waits for exactly `expected` events, the last of them about `marker_sku`.
async fn published(nats: &NatsServer, expected: usize, marker_sku: &str) -> Vec<StoredMessage> {
    let messages = nats.wait_for_messages(STREAM, expected).await;
    assert_eq!(messages.len(), expected, "{messages:#?}");
    let last = &messages[expected - 1].payload;
    assert_eq!(last["subject"], marker_sku, "{messages:#?}");
    assert_valid_and_distinct(&messages);
    messages
}

/// Waits until `events_outbox_depth` reads `depth` (refreshed every second).
async fn wait_for_outbox_depth(app: &TestApp, depth: i64) {
    let line = format!("events_outbox_depth {depth}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = app.client.get("/metrics").await.text;
        if text.lines().any(|l| l == line) {
            return;
        }
        assert!(Instant::now() < deadline, "no `{line}` in\n{text}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn outbox_rows(app: &TestApp) -> i64 {
    let store = pricing::store::Store::connect(&app.db.config, Outbox::off())
        .await
        .expect("store");
    let mut conn = store.database().read().await.expect("connection");
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(&mut *conn)
        .await
        .expect("outbox counted")
}

#[actix_web::test]
async fn every_price_change_publishes_one_valid_event_and_an_unchanged_one_nothing() {
    let nats = NatsServer::start().await;
    let app = events_app(&nats).await;
    put_price(&app, "Z001", 10.5, 10).await.assert_status(200);
    // The same price again: recorded in the history, but nothing changed.
    put_price(&app, "Z001", 10.5, 10).await.assert_status(200);
    put_price(&app, "Z001", 12.0, 10).await.assert_status(200);
    put_price(&app, "A001", 999.99, 0).await.assert_status(200);
    // Refused: nothing changed, nothing published.
    put_price(&app, "A002", -1.0, 0).await.assert_status(400);
    put_price(&app, "A002", 30.0, 0).await.assert_status(200);

    let messages = published(&nats, 4, "A002").await;
    let data: Vec<&Value> = messages.iter().map(|m| &m.payload["data"]).collect();
    assert_eq!(
        data,
        [
            &json!({"sku": "Z001", "price": 9.45, "base_price": 10.5, "discount_percent": 10,
                    "currency": "USD", "previous_price": null, "actor": "anonymous"}),
            &json!({"sku": "Z001", "price": 10.8, "base_price": 12.0, "discount_percent": 10,
                    "currency": "USD", "previous_price": 9.45, "actor": "anonymous"}),
            &json!({"sku": "A001", "price": 999.99, "base_price": 999.99, "discount_percent": 0,
                    "currency": "USD", "previous_price": 899.99, "actor": "anonymous"}),
            &json!({"sku": "A002", "price": 30.0, "base_price": 30.0, "discount_percent": 0,
                    "currency": "USD", "previous_price": 25.5, "actor": "anonymous"}),
        ]
    );
    for message in &messages {
        assert_eq!(message.payload["source"], "/pricing");
        assert_eq!(message.payload["subject"], message.payload["data"]["sku"]);
    }
    let history = app.client.get("/price/Z001/history").await;
    assert_eq!(history.body["count"], 3, "{}", history.text);
    wait_for_outbox_depth(&app, 0).await;
}

#[actix_web::test]
async fn changes_made_while_the_broker_is_down_answer_and_are_published_once_it_is_back() {
    let mut nats = NatsServer::start().await;
    let app = events_app(&nats).await;
    put_price(&app, "A001", 950.0, 10).await.assert_status(200);
    published(&nats, 1, "A001").await;
    wait_for_outbox_depth(&app, 0).await;

    nats.stop();
    put_price(&app, "A002", 20.0, 0).await.assert_status(200);
    put_price(&app, "Z009", 1.0, 0).await.assert_status(200);
    wait_for_outbox_depth(&app, 2).await;
    let health = app.client.get("/health").await;
    assert_eq!(
        health.body["checks"]["events"]["status"], "down",
        "{}",
        health.text
    );

    nats.resume().await;
    let messages = published(&nats, 3, "Z009").await;
    let skus: Vec<&Value> = messages.iter().map(|m| &m.payload["subject"]).collect();
    assert_eq!(skus, ["A001", "A002", "Z009"]);
    wait_for_outbox_depth(&app, 0).await;
}

#[actix_web::test]
async fn a_relay_killed_before_marking_publishes_again_and_jetstream_keeps_one_copy() {
    let nats = NatsServer::start().await;
    // The service's own relay never reaches a broker (nothing listens on
    // port 1): the test's relay below is the only one publishing.
    let unreachable = EventsConfig {
        nats_url: Some("nats://127.0.0.1:1".into()),
        ..nats.events_config()
    };
    let app = spawn_app_with(move |c| c.events = unreachable).await;
    put_price(&app, "A001", 1.25, 0).await.assert_status(200);
    assert_eq!(outbox_rows(&app).await, 1);

    let store = pricing::store::Store::connect(&app.db.config, Outbox::off())
        .await
        .expect("store");
    let messages = nats
        .assert_relay_killed_before_marking_publishes_once(
            store.database().clone(),
            "pricing",
            PRICE_CHANGED,
        )
        .await;
    assert_valid_and_distinct(&messages);
}

#[actix_web::test]
async fn with_events_off_no_outbox_row_is_written() {
    let app = spawn_app().await;
    put_price(&app, "A001", 950.0, 10).await.assert_status(200);
    put_price(&app, "Z001", 5.0, 0).await.assert_status(200);
    assert_eq!(outbox_rows(&app).await, 0);
    let health = app.client.get("/health").await;
    assert!(
        health.body["checks"].get("events").is_none(),
        "{}",
        health.text
    );
    // Registered all the same: dashboards read zeros, not gaps.
    let metrics = app.client.get("/metrics").await.text;
    assert!(
        metrics.lines().any(|l| l == "events_outbox_depth 0"),
        "{metrics}"
    );
}
