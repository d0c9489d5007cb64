//! Order's consumers through a real nats-server: price changes reach the
//! fallback prices, expired reservations resolve their orders at once, and
//! redeliveries, crashes before the ack and poison events change nothing
//! they should not.
//!
//! Inventory and pricing publish their own events in their crates; here the
//! events are published as they would be (same stream, same envelope), so
//! that each case can be made exactly.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::LocalBoxFuture;
use serde_json::{Value, json};
use shared_events::consumer::{self, Effect};
use shared_events::{Broker, CloudEvent, EventMetrics, Handler};
use shared_http::health::Lifecycle;
use shared_http::metrics::Registry;
use shared_testkit::nats::NatsServer;
use shared_testkit::{TestClient, TestDatabase, eventually};
use tokio::sync::Notify;

use crate::events::{ORDER_STREAM, stack_with_events};
use crate::helpers::Stack;

/// Creates the streams inventory and pricing would, so that order's
/// consumers find them at once.
pub async fn producer_streams(nats: &NatsServer) -> Broker {
    let broker = Broker::connect(&nats.events_config(), "test")
        .await
        .expect("connects")
        .expect("events on");
    for service in ["pricing", "inventory"] {
        broker
            .ensure_service_stream(service)
            .await
            .expect("stream created");
    }
    broker
}

/// Publishes `event` as its producer's relay would, under `message_id`.
pub async fn publish(nats: &NatsServer, event: &CloudEvent, message_id: &str) {
    let json = serde_json::to_value(event).expect("json");
    publish_json(nats, &event.event_type, &json, message_id).await;
}

/// Publishes the document `event` on `subject`, under `message_id`.
async fn publish_json(nats: &NatsServer, subject: &str, event: &Value, message_id: &str) {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", message_id);
    nats.jetstream()
        .await
        .publish_with_headers(
            subject.to_owned(),
            headers,
            serde_json::to_vec(event).expect("json").into(),
        )
        .await
        .expect("published")
        .await
        .expect("stored");
}

fn price_changed(sku: &str, base_price: f64) -> CloudEvent {
    let data = json!({"sku": sku, "price": base_price, "base_price": base_price,
                      "discount_percent": 0, "currency": "USD"});
    CloudEvent::new("pricing", "shop.pricing.price_changed", sku, &data).expect("event")
}

/// The value of `events_consumed_total` for `consumer` and `outcome`.
pub async fn consumed_total(client: &TestClient, consumer: &str, outcome: &str) -> f64 {
    let series = format!("events_consumed_total{{consumer=\"{consumer}\",outcome=\"{outcome}\"}} ");
    let res = client.get("/metrics").await;
    res.assert_status(200);
    res.text
        .lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

/// Waits until `consumer` has had `count` deliveries ending in `outcome`
/// (read from order's metrics with `client`).
pub async fn wait_consumed(client: &TestClient, consumer: &str, outcome: &str, count: f64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = consumed_total(client, consumer, outcome).await;
        if now >= count {
            assert_eq!(now, count, "{consumer} {outcome}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{consumer}: {now} {outcome}, expected {count}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A pending order of `quantity` `sku`, written straight into the order
/// service's store, as a process that died mid-saga leaves it.
pub async fn pending_order(
    stack: &Stack,
    customer: &str,
    sku: &str,
    quantity: u64,
) -> order::domain::OrderId {
    let store = order::store::Store::connect(&stack.order_config().database)
        .await
        .expect("store");
    let id = order::domain::OrderId::generate();
    let new_order =
        order::domain::NewOrder::parse(customer, &[(sku.to_owned(), quantity)]).expect("valid");
    store
        .record_pending(&id, &new_order, None, shared_http::timestamp::now_ms())
        .await
        .expect("recorded");
    id
}

/// Inventory's event for the expiry of the reservation of order `id`.
pub fn reservation_expired(id: &order::domain::OrderId) -> CloudEvent {
    let data = json!({"reservation_id": id.as_str()});
    CloudEvent::new(
        "inventory",
        "shop.inventory.reservation_expired",
        id.as_str(),
        &data,
    )
    .expect("event")
}

async fn fallback_unit_price(stack: &mut Stack, sku: &str) -> Value {
    stack.stop_pricing().await;
    let res = stack.place("c-fallback", &[(sku, 1)]).await;
    res.assert_status(201);
    assert_eq!(res.body["pricing"], "fallback");
    stack.start_pricing().await;
    res.body["items"][0]["unit_price"].clone()
}

#[actix_web::test]
async fn a_price_change_is_what_the_next_fallback_priced_order_uses() {
    let nats = NatsServer::start().await;
    let _broker = producer_streams(&nats).await;
    let mut stack = stack_with_events(&nats).await;
    let live = stack.place("c1", &[("A001", 1)]).await;
    live.assert_status(201);
    assert_eq!(live.body["items"][0]["unit_price"], 899.99);

    publish(&nats, &price_changed("A001", 749.5), "p-1").await;
    wait_consumed(&stack.order.client, "order-prices", "handled", 1.0).await;

    assert_eq!(fallback_unit_price(&mut stack, "A001").await, 749.5);
}

/// A newer pricing may add fields to its events (additive changes only), in
/// `data` and as envelope extensions: this release applies what it knows.
#[actix_web::test]
async fn a_price_change_carrying_fields_this_release_does_not_know_is_applied() {
    let nats = NatsServer::start().await;
    let _broker = producer_streams(&nats).await;
    let mut stack = stack_with_events(&nats).await;
    stack.place("c1", &[("A001", 1)]).await.assert_status(201);

    let change = price_changed("A001", 749.5);
    let mut json = serde_json::to_value(&change).expect("json");
    json["data"]["valid_from"] = json!("2027-01-01T00:00:00Z");
    json["data"]["channels"] = json!({"web": true, "store": false});
    json["pricelist"] = json!("spring");
    publish_json(&nats, &change.event_type, &json, "p-extra").await;
    wait_consumed(&stack.order.client, "order-prices", "handled", 1.0).await;

    assert_eq!(fallback_unit_price(&mut stack, "A001").await, 749.5);
}

#[actix_web::test]
async fn the_same_event_delivered_twice_is_handled_once() {
    let nats = NatsServer::start().await;
    let _broker = producer_streams(&nats).await;
    let mut stack = stack_with_events(&nats).await;
    let change = price_changed("A002", 31.0);
    publish(&nats, &change, "first").await;
    wait_consumed(&stack.order.client, "order-prices", "handled", 1.0).await;
    // Another message id: JetStream stores it again, the inbox drops it.
    publish(&nats, &change, "second").await;
    wait_consumed(&stack.order.client, "order-prices", "duplicate", 1.0).await;
    assert_eq!(
        consumed_total(&stack.order.client, "order-prices", "handled").await,
        1.0
    );
    assert_eq!(fallback_unit_price(&mut stack, "A002").await, 31.0);
}

#[actix_web::test]
async fn an_expired_reservation_fails_its_pending_order_at_once_and_releases_it() {
    let nats = NatsServer::start().await;
    let _broker = producer_streams(&nats).await;
    let stack = stack_with_events(&nats).await;
    // A pending order holding stock, as a process that died mid-saga leaves it.
    let id = pending_order(&stack, "c9", "A003", 2).await;
    let hold = json!({"reservation_id": id.as_str(), "lines": [{"sku": "A003", "quantity": 2}]});
    stack
        .inventory_client
        .post_json("/reservations", &hold)
        .await
        .assert_status(201);
    assert_eq!(stack.stock("A003").await, 118);

    let expired = reservation_expired(&id);
    publish(&nats, &expired, "e-1").await;
    wait_consumed(&stack.order.client, "order-expiries", "handled", 1.0).await;
    publish(&nats, &expired, "e-2").await;
    wait_consumed(&stack.order.client, "order-expiries", "duplicate", 1.0).await;

    let order = stack.order.client.get(&format!("/orders/{id}")).await;
    order.assert_status(200);
    assert_eq!(order.body["status"], "failed");
    assert_eq!(
        order.body["failure_reason"],
        "its stock reservation expired"
    );
    assert_eq!(stack.stock("A003").await, 120, "the stock is back");
    let messages = nats.wait_for_messages(ORDER_STREAM, 1).await;
    let failed: Vec<&Value> = messages
        .iter()
        .map(|m| &m.payload)
        .filter(|p| p["subject"] == id.as_str())
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["type"], "shop.order.failed");
}

#[actix_web::test]
async fn an_expired_reservation_that_is_no_order_s_is_left_alone() {
    let nats = NatsServer::start().await;
    let _broker = producer_streams(&nats).await;
    let stack = stack_with_events(&nats).await;
    // A reservation someone made under an id of an order's shape.
    let stranger = order::domain::OrderId::generate();
    publish(&nats, &reservation_expired(&stranger), "e-1").await;
    wait_consumed(&stack.order.client, "order-expiries", "handled", 1.0).await;

    let metrics = stack.inventory_client.get("/metrics").await.text;
    assert!(
        !metrics.contains(r#"method="DELETE""#),
        "a release was sent:\n{metrics}"
    );
    stack
        .order
        .client
        .get(&format!("/orders/{stranger}"))
        .await
        .assert_status(404);
}

#[actix_web::test]
async fn a_poison_event_goes_to_the_dead_letters_and_the_next_one_is_handled() {
    let nats = NatsServer::start().await;
    let _broker = producer_streams(&nats).await;
    let mut stack = stack_with_events(&nats).await;
    let poison = CloudEvent::new(
        "pricing",
        "shop.pricing.price_changed",
        "A004",
        &json!({"sku": "A004"}),
    )
    .expect("event");
    publish(&nats, &poison, "poison").await;
    publish(&nats, &price_changed("A004", 199.0), "good").await;

    wait_consumed(&stack.order.client, "order-prices", "handled", 1.0).await;
    wait_consumed(&stack.order.client, "order-prices", "dead_lettered", 1.0).await;
    let letters = nats.wait_for_messages("SHOP_DEAD_LETTERS", 1).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].subject, "shop.dead_letter.order-prices");
    assert_eq!(letters[0].payload["id"], poison.id.as_str());
    let max_deliver = nats.events_config().max_deliver.to_string();
    assert_eq!(letters[0].headers["Shop-Deliveries"], max_deliver);
    assert_eq!(
        consumed_total(&stack.order.client, "order-prices", "retried").await,
        f64::from(u8::try_from(nats.events_config().max_deliver - 1).expect("small"))
    );
    assert_eq!(fallback_unit_price(&mut stack, "A004").await, 199.0);
    // Counted from the dead-letter stream, on order's /metrics.
    let depth = r#"events_dead_letter_depth{consumer="order-prices"} "#;
    eventually(
        "the dead letter counted",
        Duration::from_secs(15),
        async || {
            let metrics = stack.order.client.get("/metrics").await.text;
            metrics.lines().any(|line| line == format!("{depth}1"))
        },
    )
    .await;
}

/// The order-prices handler, stopping for good after its first commit (the
/// test then aborts it: a consumer killed between its effect and its ack).
struct KilledAfterCommit {
    inner: order::consumers::PriceChanges,
    effects: Mutex<Vec<Effect>>,
    committed: Notify,
}

impl Handler for KilledAfterCommit {
    fn handle<'a>(&'a self, event: &'a CloudEvent) -> LocalBoxFuture<'a, anyhow::Result<Effect>> {
        Box::pin(async move {
            let effect = self.inner.handle(event).await?;
            let first = {
                let mut effects = self.effects.lock().expect("not poisoned");
                effects.push(effect);
                effects.len() == 1
            };
            if first {
                self.committed.notify_one();
                futures::future::pending::<()>().await;
            }
            Ok(effect)
        })
    }
}

#[actix_web::test]
async fn a_consumer_killed_after_its_effect_and_before_its_ack_changes_nothing_on_redelivery() {
    shared_testkit::init_tracing();
    let nats = NatsServer::start().await;
    let broker = producer_streams(&nats).await;
    let db = TestDatabase::create("order").await;
    let store = order::store::Store::connect(&db.config)
        .await
        .expect("store");
    let handler = Arc::new(KilledAfterCommit {
        inner: order::consumers::PriceChanges::new(store.clone()),
        effects: Mutex::new(Vec::new()),
        committed: Notify::new(),
    });
    let metrics = EventMetrics::register(&mut Registry::default());
    let lifecycle = Lifecycle::default();
    let start = || {
        actix_web::rt::spawn(consumer::run(
            broker.clone(),
            order::consumers::PRICES,
            handler.clone(),
            metrics.clone(),
            lifecycle.clone(),
        ))
    };

    let running = start();
    publish(&nats, &price_changed("B003", 88.0), "p-1").await;
    handler.committed.notified().await;
    running.abort();
    let sku = order::domain::Sku::parse("B003").expect("sku");
    let prices = store.last_prices([&sku].into_iter()).await.expect("prices");
    assert_eq!(prices[&sku].unit.cents(), 8800, "the effect was committed");

    let _restarted = start();
    eventually(
        "the event to be delivered again",
        Duration::from_secs(15),
        async || handler.effects.lock().expect("not poisoned").len() >= 2,
    )
    .await;
    let effects = handler.effects.lock().expect("not poisoned").clone();
    assert_eq!(effects, [Effect::Applied, Effect::AlreadyHandled]);
    lifecycle.start_draining();
}

#[actix_web::test]
async fn a_price_change_older_than_the_last_live_quote_does_not_replace_it() {
    let nats = NatsServer::start().await;
    let _broker = producer_streams(&nats).await;
    let mut stack = stack_with_events(&nats).await;
    stack.place("c1", &[("A001", 1)]).await.assert_status(201);
    // Published late (after a broker outage, say): made an hour ago.
    let mut stale = price_changed("A001", 500.0);
    stale.time = shared_http::timestamp::to_rfc3339(shared_http::timestamp::now_ms() - 3_600_000);
    publish(&nats, &stale, "stale").await;
    wait_consumed(&stack.order.client, "order-prices", "handled", 1.0).await;
    assert_eq!(fallback_unit_price(&mut stack, "A001").await, 899.99);
}

/// All three services with events on, inventory's reservations lasting
/// `reservation_ttl`.
async fn stack_all_producing(nats: &NatsServer, reservation_ttl: Duration) -> Stack {
    let events = nats.events_config();
    crate::helpers::spawn_stack_with(move |config| {
        config.order.events = events.clone();
        config.inventory.events = events.clone();
        config.inventory.reservation_ttl = reservation_ttl;
        config.pricing.events = events;
    })
    .await
}

#[actix_web::test]
async fn a_price_set_at_pricing_reaches_the_next_fallback_priced_order() {
    let nats = NatsServer::start().await;
    let mut stack = stack_all_producing(&nats, Duration::from_secs(60)).await;
    let pricing = stack.pricing.as_ref().expect("pricing runs").client.clone();
    pricing
        .put_json(
            "/price/A004",
            &json!({"base_price": 10.0, "discount_percent": 20}),
        )
        .await
        .assert_status(200);
    wait_consumed(&stack.order.client, "order-prices", "handled", 1.0).await;
    assert_eq!(fallback_unit_price(&mut stack, "A004").await, 8.0);
}

#[actix_web::test]
async fn a_reservation_expiring_at_inventory_fails_its_pending_order_at_once() {
    let nats = NatsServer::start().await;
    let stack = stack_all_producing(&nats, Duration::from_millis(300)).await;
    let id = pending_order(&stack, "c9", "A003", 2).await;
    let hold = json!({"reservation_id": id.as_str(), "lines": [{"sku": "A003", "quantity": 2}]});
    stack
        .inventory_client
        .post_json("/reservations", &hold)
        .await
        .assert_status(201);
    // Inventory's sweep expires it and publishes the expiry; order takes it.
    wait_consumed(&stack.order.client, "order-expiries", "handled", 1.0).await;
    let order = stack.order.client.get(&format!("/orders/{id}")).await;
    order.assert_status(200);
    assert_eq!(order.body["status"], "failed");
    assert_eq!(stack.stock("A003").await, 120, "the stock is back");
}

#[actix_web::test]
async fn a_price_change_handled_before_a_restart_is_still_known_to_the_inbox_after_it() {
    let nats = NatsServer::start().await;
    let _broker = producer_streams(&nats).await;
    // Sent outbox rows pruned after a second; the streams keep events 7 days.
    let events = shared_events::EventsConfig {
        outbox_retention: Duration::from_secs(1),
        ..nats.events_config()
    };
    let mut stack =
        crate::helpers::spawn_stack_with(move |config| config.order.events = events).await;
    let change = price_changed("A002", 31.0);
    publish(&nats, &change, "first").await;
    wait_consumed(&stack.order.client, "order-prices", "handled", 1.0).await;
    let handled_at = shared_http::timestamp::now_ms();
    eventually(
        "the outbox retention to pass",
        Duration::from_secs(15),
        async || shared_http::timestamp::now_ms() - handled_at > 1_500,
    )
    .await;
    // The restarted service prunes its inbox at once.
    stack.restart_order().await;
    publish(&nats, &change, "second").await;
    wait_consumed(&stack.order.client, "order-prices", "duplicate", 1.0).await;
    assert_eq!(
        consumed_total(&stack.order.client, "order-prices", "handled").await,
        0.0,
        "applied once, before the restart"
    );
}
