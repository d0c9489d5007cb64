//! Inventory's events, published through the outbox to a real nats-server:
//! one per change, each valid against its schema, none for what changes
//! nothing, none lost while the broker is away, none doubled by a relay
//! killed between publishing and marking, and no outbox rows at all while
//! events are off.
//!
//! "Nothing more was published" is shown with a marker: the relay publishes
//! in commit order, so once a last change's event is in the stream, any
//! event an earlier request wrongly produced is there too.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use shared_events::EventsConfig;
use shared_events::Outbox;
use shared_testkit::eventually;
use shared_testkit::nats::{NatsServer, StoredMessage, assert_valid_and_distinct, outbox_rows};

use crate::helpers::{TestApp, spawn_app_with};

const STREAM: &str = "SHOP_INVENTORY";
const STOCK_CHANGED: &str = "shop.inventory.stock_changed";
const EXPIRED: &str = "shop.inventory.reservation_expired";

fn count(messages: &[StoredMessage], subject: &str) -> usize {
    messages.iter().filter(|m| m.subject == subject).count()
}

fn data(messages: &[StoredMessage]) -> Vec<&Value> {
    messages.iter().map(|m| &m.payload["data"]).collect()
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
async fn every_catalogue_change_publishes_one_valid_event_and_nothing_else_does() {
    let nats = NatsServer::start().await;
    let app = events_app(&nats).await;
    let client = &app.server.client;
    let lamp = json!({"name": "Lamp", "category": "home-office"});
    app.put_item(client, "D001", &lamp).await.assert_status(201);
    let desk_lamp = json!({"name": "Desk Lamp", "category": "home-office"});
    app.put_item(client, "D001", &desk_lamp)
        .await
        .assert_status(200);
    // The same again changes nothing: no event.
    app.put_item(client, "D001", &desk_lamp)
        .await
        .assert_status(200);
    app.adjust(client, "A001", 5).await.assert_status(200);
    app.adjust(client, "A001", -2).await.assert_status(200);
    // Refused: nothing changed, nothing published.
    app.adjust(client, "D001", -1).await.assert_status(409);
    // Reservations are the order's story: no stock_changed for them.
    app.reserve("r1", &[("A002", 1)]).await.assert_status(201);
    app.confirm("r1").await.assert_status(200);
    app.reserve("r2", &[("A002", 1)]).await.assert_status(201);
    app.release("r2").await.assert_status(204);
    app.adjust(client, "B001", 1).await.assert_status(200);

    let messages = nats
        .wait_for_events_up_to(STREAM, 5, "B001", &schemas())
        .await;
    assert_eq!(count(&messages, STOCK_CHANGED), 5);
    let anonymous = "anonymous";
    assert_eq!(
        data(&messages),
        [
            &json!({"sku": "D001", "name": "Lamp", "category": "home-office", "stock": 0,
                    "previous_stock": null, "change": "created", "delta": null, "reason": null,
                    "actor": anonymous}),
            &json!({"sku": "D001", "name": "Desk Lamp", "category": "home-office", "stock": 0,
                    "previous_stock": 0, "change": "updated", "delta": null, "reason": null,
                    "actor": anonymous}),
            &json!({"sku": "A001", "name": "Laptop", "category": "electronics", "stock": 55,
                    "previous_stock": 50, "change": "stock", "delta": 5,
                    "reason": "test adjustment", "actor": anonymous}),
            &json!({"sku": "A001", "name": "Laptop", "category": "electronics", "stock": 53,
                    "previous_stock": 55, "change": "stock", "delta": -2,
                    "reason": "test adjustment", "actor": anonymous}),
            &json!({"sku": "B001", "name": "Desk Chair", "category": "furniture", "stock": 21,
                    "previous_stock": 20, "change": "stock", "delta": 1,
                    "reason": "test adjustment", "actor": anonymous}),
        ]
    );
    for message in &messages {
        assert_eq!(message.payload["source"], "/inventory");
        assert_eq!(message.payload["subject"], message.payload["data"]["sku"]);
    }
    app.server
        .client
        .wait_for_metric_line("events_outbox_depth 0")
        .await;
}

#[actix_web::test]
async fn an_expired_reservation_publishes_its_event_once() {
    let nats = NatsServer::start().await;
    let events = nats.events_config();
    let app = spawn_app_with(move |c| {
        c.events = events;
        c.reservation_ttl = Duration::from_millis(50);
    })
    .await;
    app.reserve("late-1", &[("B001", 1), ("A001", 2)])
        .await
        .assert_status(201);
    let first = nats.wait_for_messages(STREAM, 1).await;
    assert_eq!(first.len(), 1, "no expiry published");
    // Reading it again (which expires what is due) publishes nothing more.
    let read = app.get("/reservations/late-1").await;
    assert_eq!(read.body["status"], "expired");
    app.adjust(&app.server.client, "A002", 1)
        .await
        .assert_status(200);

    let messages = nats
        .wait_for_events_up_to(STREAM, 2, "A002", &schemas())
        .await;
    assert_eq!(count(&messages, EXPIRED), 1);
    let expired = &messages[0].payload;
    assert_eq!(expired["subject"], "late-1");
    assert_eq!(expired["data"]["reservation_id"], "late-1");
    assert_eq!(
        expired["data"]["lines"],
        json!([{"sku": "A001", "quantity": 2}, {"sku": "B001", "quantity": 1}])
    );
    assert_eq!(app.stock("A001").await, 50);
}

#[actix_web::test]
async fn changes_made_while_the_broker_is_down_answer_and_are_published_once_it_is_back() {
    let mut nats = NatsServer::start().await;
    let app = events_app(&nats).await;
    let client = &app.server.client;
    app.adjust(client, "A001", 1).await.assert_status(200);
    nats.wait_for_events_up_to(STREAM, 1, "A001", &schemas())
        .await;
    app.server
        .client
        .wait_for_metric_line("events_outbox_depth 0")
        .await;

    nats.stop();
    app.adjust(client, "A002", 10).await.assert_status(200);
    app.adjust(client, "A003", 10).await.assert_status(200);
    let mug = json!({"name": "Mug", "category": "kitchen"});
    app.put_item(client, "K001", &mug).await.assert_status(201);
    app.server
        .client
        .wait_for_metric_line("events_outbox_depth 3")
        .await;
    let health = app.get("/health").await;
    assert_eq!(
        health.body["checks"]["events"]["status"], "down",
        "{}",
        health.text
    );

    nats.resume().await;
    let messages = nats
        .wait_for_events_up_to(STREAM, 4, "K001", &schemas())
        .await;
    let skus: Vec<&Value> = messages.iter().map(|m| &m.payload["subject"]).collect();
    assert_eq!(skus, ["A001", "A002", "A003", "K001"]);
    app.server
        .client
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
    app.adjust(&app.server.client, "A001", 3)
        .await
        .assert_status(200);
    assert_eq!(outbox_rows(&app.db.config).await, 1);

    let store = inventory::store::Store::connect(&app.db.config, Outbox::off())
        .await
        .expect("store");
    let messages = nats
        .assert_relay_killed_before_marking_publishes_once(
            store.database().clone(),
            "inventory",
            STOCK_CHANGED,
        )
        .await;
    assert_valid_and_distinct(&messages, &schemas());
}

#[actix_web::test]
async fn with_events_off_no_outbox_row_is_written() {
    let app = spawn_app_with(|c| c.reservation_ttl = Duration::from_millis(1)).await;
    let client = &app.server.client;
    let lamp = json!({"name": "Lamp", "category": "home-office"});
    app.put_item(client, "D001", &lamp).await.assert_status(201);
    app.adjust(client, "A001", 5).await.assert_status(200);
    app.reserve("gone", &[("A002", 1)]).await.assert_status(201);
    eventually(
        "the reservation to expire",
        Duration::from_secs(5),
        async || app.get("/reservations/gone").await.body["status"] == "expired",
    )
    .await;
    assert_eq!(outbox_rows(&app.db.config).await, 0);
    let health = app.get("/health").await;
    assert!(
        health.body["checks"].get("events").is_none(),
        "{}",
        health.text
    );
    // Registered all the same: dashboards read zeros, not gaps.
    assert!(
        app.get("/metrics")
            .await
            .text
            .contains("events_outbox_depth 0")
    );
}
