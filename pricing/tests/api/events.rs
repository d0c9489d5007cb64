//! Pricing's event, published through the outbox to a real nats-server: one
//! per price change, valid against its schema, none for a price set to what
//! it was, none lost while the broker is away, none doubled by a relay
//! killed between publishing and marking, and no outbox rows at all while
//! events are off.
//!
//! "Nothing more was published" is shown with a marker: the relay publishes
//! in commit order, so once a last change's event is in the stream, any
//! event an earlier request wrongly produced is there too.

use std::path::PathBuf;

use serde_json::{Value, json};
use shared_events::EventsConfig;
use shared_events::Outbox;
use shared_testkit::TestResponse;
use shared_testkit::nats::{NatsServer, assert_valid_and_distinct, outbox_rows};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

const STREAM: &str = "SHOP_PRICING";
const PRICE_CHANGED: &str = "shop.pricing.price_changed";

async fn put_price(app: &TestApp, sku: &str, base_price: f64, discount: u64) -> TestResponse {
    let body = json!({"base_price": base_price, "discount_percent": discount});
    app.client.put_json(&format!("/price/{sku}"), &body).await
}

/// Where this service's event schemas are: `<type>.schema.json`.
fn schemas() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("events")
}

async fn events_app(nats: &NatsServer) -> TestApp {
    let events = nats.events_config();
    spawn_app_with(move |c| c.events = events).await
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

    let messages = nats
        .wait_for_events_up_to(STREAM, 4, "A002", &schemas())
        .await;
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
    app.client
        .wait_for_metric_line("events_outbox_depth 0")
        .await;
}

#[actix_web::test]
async fn changes_made_while_the_broker_is_down_answer_and_are_published_once_it_is_back() {
    let mut nats = NatsServer::start().await;
    let app = events_app(&nats).await;
    put_price(&app, "A001", 950.0, 10).await.assert_status(200);
    nats.wait_for_events_up_to(STREAM, 1, "A001", &schemas())
        .await;
    app.client
        .wait_for_metric_line("events_outbox_depth 0")
        .await;

    nats.stop();
    put_price(&app, "A002", 20.0, 0).await.assert_status(200);
    put_price(&app, "Z009", 1.0, 0).await.assert_status(200);
    app.client
        .wait_for_metric_line("events_outbox_depth 2")
        .await;
    let health = app.client.get("/health").await;
    assert_eq!(
        health.body["checks"]["events"]["status"], "down",
        "{}",
        health.text
    );

    nats.resume().await;
    let messages = nats
        .wait_for_events_up_to(STREAM, 3, "Z009", &schemas())
        .await;
    let skus: Vec<&Value> = messages.iter().map(|m| &m.payload["subject"]).collect();
    assert_eq!(skus, ["A001", "A002", "Z009"]);
    app.client
        .wait_for_metric_line("events_outbox_depth 0")
        .await;
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
    assert_eq!(outbox_rows(&app.db.config).await, 1);

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
    assert_valid_and_distinct(&messages, &schemas());
}

#[actix_web::test]
async fn with_events_off_no_outbox_row_is_written() {
    let app = spawn_app().await;
    put_price(&app, "A001", 950.0, 10).await.assert_status(200);
    put_price(&app, "Z001", 5.0, 0).await.assert_status(200);
    assert_eq!(outbox_rows(&app.db.config).await, 0);
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
