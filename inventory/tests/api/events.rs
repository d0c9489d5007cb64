//! Inventory's events, published through the outbox to a real nats-server:
//! one per change (per item a stock movement moves), each valid against its
//! schema, none for what changes nothing, none lost while the broker is away, none doubled by a relay
//! killed between publishing and marking, and no outbox rows at all while
//! events are off.
//!
//! "Nothing more was published" is shown with a marker: the relay publishes
//! in commit order, so once a last change's event is in the stream, any
//! event an earlier request wrongly produced is there too.

use std::path::PathBuf;
use std::time::Duration;

use inventory::domain::Catalog;
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

/// How many items the shipped catalogue seeds, each with its event.
const SEEDED: usize = 13;

/// The messages after the seed's events, which are checked to be the
/// catalogue's creations.
fn after_the_seed(messages: &[StoredMessage]) -> &[StoredMessage] {
    let (seed, rest) = messages.split_at(SEEDED);
    for message in seed {
        let data = &message.payload["data"];
        assert_eq!(
            (&data["change"], &data["movement"], &data["actor"]),
            (&json!("created"), &json!("created"), &json!("inventory")),
            "{data:#}"
        );
    }
    rest
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
async fn every_change_publishes_one_valid_event_and_nothing_else_does() {
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
    // Reservations move stock: one event per item they move.
    app.reserve("r1", &[("A002", 1)]).await.assert_status(201);
    app.confirm("r1").await.assert_status(200);
    app.confirm("r1").await.assert_status(200); // again: nothing moves
    app.reserve("r2", &[("A002", 1)]).await.assert_status(201);
    app.reserve("r2", &[("A002", 1)]).await.assert_status(200); // a replay
    app.reserve("r3", &[("A002", 10_000)])
        .await
        .assert_status(409);
    app.release("r2").await.assert_status(204);
    app.release("r2").await.assert_status(204); // again: nothing moves
    app.adjust(client, "B001", 1).await.assert_status(200);

    let messages = nats
        .wait_for_events_up_to(STREAM, SEEDED + 9, "B001", &schemas())
        .await;
    assert_eq!(count(&messages, STOCK_CHANGED), SEEDED + 9);
    let messages = after_the_seed(&messages);
    let anonymous = "anonymous";
    let mouse = |stock: i64, previous: i64, movement: &str, id: &str| {
        let delta = (stock != previous).then_some(stock - previous);
        json!({"sku": "A002", "name": "Mouse", "category": "electronics", "stock": stock,
               "previous_stock": previous, "change": "stock", "delta": delta, "reason": null,
               "actor": anonymous, "movement": movement, "reservation_id": id, "quantity": 1})
    };
    assert_eq!(
        data(messages),
        [
            &json!({"sku": "D001", "name": "Lamp", "category": "home-office", "stock": 0,
                    "previous_stock": null, "change": "created", "delta": null, "reason": null,
                    "actor": anonymous, "movement": "created"}),
            &json!({"sku": "D001", "name": "Desk Lamp", "category": "home-office", "stock": 0,
                    "previous_stock": 0, "change": "updated", "delta": null, "reason": null,
                    "actor": anonymous, "movement": "updated"}),
            &json!({"sku": "A001", "name": "Laptop", "category": "electronics", "stock": 55,
                    "previous_stock": 50, "change": "stock", "delta": 5,
                    "reason": "test adjustment", "actor": anonymous, "movement": "adjusted"}),
            &json!({"sku": "A001", "name": "Laptop", "category": "electronics", "stock": 53,
                    "previous_stock": 55, "change": "stock", "delta": -2,
                    "reason": "test adjustment", "actor": anonymous, "movement": "adjusted"}),
            &mouse(199, 200, "reserved", "r1"),
            &mouse(199, 199, "confirmed", "r1"),
            &mouse(198, 199, "reserved", "r2"),
            &mouse(199, 198, "released", "r2"),
            &json!({"sku": "B001", "name": "Desk Chair", "category": "furniture", "stock": 21,
                    "previous_stock": 20, "change": "stock", "delta": 1,
                    "reason": "test adjustment", "actor": anonymous, "movement": "adjusted"}),
        ]
    );
    for message in messages {
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
    // The seed, the reservation's two items, the expiry and its two items.
    let first = nats.wait_for_messages(STREAM, SEEDED + 5).await;
    assert_eq!(first.len(), SEEDED + 5, "no expiry published");
    // Reading it again (which expires what is due) publishes nothing more.
    let read = app.get("/reservations/late-1").await;
    assert_eq!(read.body["status"], "expired");
    app.adjust(&app.server.client, "A002", 1)
        .await
        .assert_status(200);

    let messages = nats
        .wait_for_events_up_to(STREAM, SEEDED + 6, "A002", &schemas())
        .await;
    assert_eq!(count(&messages, EXPIRED), 1);
    let messages = after_the_seed(&messages);
    let expired = &messages[2].payload;
    assert_eq!(expired["subject"], "late-1");
    assert_eq!(expired["data"]["reservation_id"], "late-1");
    assert_eq!(
        expired["data"]["lines"],
        json!([{"sku": "A001", "quantity": 2}, {"sku": "B001", "quantity": 1}])
    );
    let moved: Vec<(&Value, &Value, &Value, &Value)> = data(&messages[3..5])
        .into_iter()
        .map(|d| (&d["sku"], &d["movement"], &d["stock"], &d["actor"]))
        .collect();
    let inventory = json!("inventory");
    assert_eq!(
        moved,
        [
            (&json!("A001"), &json!("expired"), &json!(50), &inventory),
            (&json!("B001"), &json!("expired"), &json!(20), &inventory)
        ]
    );
    assert_eq!(app.stock("A001").await, 50);
}

#[actix_web::test]
async fn changes_made_while_the_broker_is_down_answer_and_are_published_once_it_is_back() {
    let mut nats = NatsServer::start().await;
    let app = events_app(&nats).await;
    let client = &app.server.client;
    app.adjust(client, "A001", 1).await.assert_status(200);
    nats.wait_for_events_up_to(STREAM, SEEDED + 1, "A001", &schemas())
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
        .wait_for_events_up_to(STREAM, SEEDED + 4, "K001", &schemas())
        .await;
    let messages = after_the_seed(&messages);
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
    // No catalogue to seed: the one event is the new item's.
    let app = spawn_app_with(move |c| {
        c.events = unreachable;
        c.catalog = Catalog { items: Vec::new() };
    })
    .await;
    let lamp = json!({"name": "Lamp", "category": "home-office"});
    app.put_item(&app.server.client, "D001", &lamp)
        .await
        .assert_status(201);
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

/// A small deterministic generator: the workload below is random, and
/// repeatable from the seed its failure prints.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        // xorshift64*: good enough to pick operations.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) % n
    }
}

const SKUS: [&str; 6] = ["A001", "A002", "A004", "B002", "C001", "N001"];

/// One random operation of worker `worker` through the API: a restock, an
/// adjustment, a reservation of 1-3 lines, a confirmation (alone or in a
/// batch), a release, or a new item. Refusals (short stock, too late) are
/// part of the workload.
async fn random_operation(app: &TestApp, dice: &mut Dice, worker: u64, step: u64) {
    let client = &app.server.client;
    let sku = SKUS[usize::try_from(dice.below(SKUS.len() as u64)).expect("small")];
    // Half the time the last reservation tried, which is likely still held.
    let back = if dice.below(2) == 0 {
        1
    } else {
        1 + dice.below(step.max(1))
    };
    let earlier = format!("w{worker}-{}", step.saturating_sub(back));
    match dice.below(8) {
        0 => {
            let delta = i64::try_from(1 + dice.below(20)).expect("small");
            let status = app.adjust(client, sku, delta).await.status.as_u16();
            assert!([200, 404].contains(&status), "{status}");
        }
        1 => {
            let delta = -i64::try_from(1 + dice.below(20)).expect("small");
            let status = app.adjust(client, sku, delta).await.status.as_u16();
            assert!([200, 404, 409].contains(&status), "{status}");
        }
        2 | 3 => {
            let mut lines: Vec<(&str, u64)> = Vec::new();
            for _ in 0..=dice.below(3) {
                let sku = SKUS[usize::try_from(dice.below(SKUS.len() as u64)).expect("small")];
                if !lines.iter().any(|(s, _)| *s == sku) {
                    lines.push((sku, 1 + dice.below(15)));
                }
            }
            let status = app
                .reserve(&format!("w{worker}-{step}"), &lines)
                .await
                .status
                .as_u16();
            assert!([201, 409, 422].contains(&status), "{status}");
        }
        4 => {
            let status = app.confirm(&earlier).await.status.as_u16();
            assert!([200, 404, 409].contains(&status), "{status}");
        }
        5 => {
            let also = format!("w{worker}-{}", dice.below(step.max(1)));
            app.confirm_all(&[&earlier, &also]).await.assert_status(200);
        }
        6 => {
            app.release(&earlier).await.assert_status(204);
        }
        _ => {
            let item = json!({"name": "New thing", "category": "misc"});
            let status = app.put_item(client, "N001", &item).await.status.as_u16();
            assert!([200, 201].contains(&status), "{status}");
        }
    }
}

/// One of each reservation movement, whatever the dice say: one confirmed,
/// one released (after it was confirmed), one left to expire.
async fn every_movement_once(app: &TestApp, worker: u64) {
    let [kept, freed, left] = ["kept", "freed", "left"].map(|n| format!("w{worker}-{n}"));
    for id in [&kept, &freed, &left] {
        app.reserve(id, &[("C001", 1)]).await.assert_status(201);
    }
    app.confirm(&kept).await.assert_status(200);
    app.confirm_all(&[&freed]).await.assert_status(200);
    app.release(&freed).await.assert_status(204);
}

/// Every item's stock, as `GET /items` lists it.
async fn stock_of_every_item(app: &TestApp) -> std::collections::BTreeMap<String, i64> {
    let items = app.get("/items").await;
    items.assert_status(200);
    let listed = items.body["items"]
        .as_array()
        .unwrap_or_else(|| items.body.as_array().expect("a list of items"));
    listed
        .iter()
        .map(|i| {
            (
                i["sku"].as_str().expect("sku").to_owned(),
                i["stock"].as_i64().expect("stock"),
            )
        })
        .collect()
}

/// Every sku's stock from the stock events alone, in stream order, each
/// event starting where the sku's last one ended.
fn project(messages: &[StoredMessage], seed: u64) -> std::collections::BTreeMap<String, i64> {
    let mut projection = std::collections::BTreeMap::new();
    for message in messages.iter().filter(|m| m.subject == STOCK_CHANGED) {
        let data = &message.payload["data"];
        let sku = data["sku"].as_str().expect("a sku").to_owned();
        let level = data["stock"].as_i64().expect("a level");
        if let (Some(last), Some(before)) = (projection.get(&sku), data["previous_stock"].as_i64())
        {
            assert_eq!(before, *last, "seed {seed}: out of order: {data}");
        }
        projection.insert(sku, level);
    }
    projection
}

#[actix_web::test]
async fn a_projection_of_the_stock_events_alone_equals_the_items_after_a_random_workload() {
    let nats = NatsServer::start().await;
    let events = nats.events_config();
    let app = spawn_app_with(move |c| {
        c.events = events;
        c.reservation_ttl = Duration::from_millis(300);
    })
    .await;
    let seed = shared_http::timestamp::now_ms().unsigned_abs() | 1;
    println!("workload seed {seed}");
    // Three callers at once, each a sequence of random operations, some of
    // them waiting long enough for earlier reservations to expire.
    let workers = (1..=3).map(|worker| {
        let app = &app;
        async move {
            let mut dice = Dice(seed.wrapping_mul(worker));
            every_movement_once(app, worker).await;
            for step in 0..80 {
                random_operation(app, &mut dice, worker, step).await;
                if dice.below(20) == 0 {
                    actix_web::rt::time::sleep(Duration::from_millis(350)).await;
                }
            }
        }
    });
    futures::future::join_all(workers).await;

    // Every reservation still held expires (reading one expires it when due).
    actix_web::rt::time::sleep(Duration::from_millis(350)).await;
    for worker in 1..=3 {
        let steps = (0..80).map(|step| step.to_string());
        for name in steps.chain(["left".to_owned()]) {
            let read = app.get(&format!("/reservations/w{worker}-{name}")).await;
            assert_ne!(
                read.body["status"], "reserved",
                "seed {seed}: {}",
                read.text
            );
        }
    }
    // The expiries just made are relayed in a moment: the projection catches
    // up with the items (the outbox depth gauge may still read 0 from before
    // them), and must then equal them.
    let items = stock_of_every_item(&app).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (mut messages, mut projection) = (Vec::new(), std::collections::BTreeMap::new());
    while projection != items && std::time::Instant::now() < deadline {
        messages = nats.messages(STREAM).await;
        projection = project(&messages, seed);
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(projection, items, "seed {seed}");
    assert_valid_and_distinct(&messages, &schemas());
    let moved = |movement: &str| {
        messages
            .iter()
            .filter(|m| m.payload["data"]["movement"] == movement)
            .count()
    };
    let kinds = [
        "created",
        "adjusted",
        "reserved",
        "confirmed",
        "released",
        "expired",
    ];
    let counts: Vec<(&str, usize)> = kinds.iter().map(|k| (*k, moved(k))).collect();
    println!("{} events: {counts:?}", messages.len());
    assert!(
        counts.iter().all(|(_, n)| *n > 0),
        "seed {seed}: {counts:?}"
    );
}
