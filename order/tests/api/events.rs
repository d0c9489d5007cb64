//! Order's events, through a real nats-server: each status change published
//! once, as its schema says, and none lost while the broker is away.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use futures::StreamExt;
use serde_json::{Value, json};
use shared_testkit::nats::{NatsServer, StoredMessage, assert_matches_schema};

use crate::helpers::{Stack, spawn_stack_with};

pub const ORDER_STREAM: &str = "SHOP_ORDER";

/// A stack whose order service has events on, against `nats`.
pub async fn stack_with_events(nats: &NatsServer) -> Stack {
    let events = nats.events_config();
    spawn_stack_with(move |config| config.order.events = events).await
}

fn schema_path(event_type: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("events/{event_type}.schema.json"))
}

/// Places a confirmed order and waits until its event is in the stream: the
/// relay publishes in outbox order, so every event written before it is
/// there too. Returns every message.
async fn fence(stack: &Stack, nats: &NatsServer) -> Vec<StoredMessage> {
    let res = stack.place("fence", &[("A001", 1)]).await;
    res.assert_status(201);
    let id = res.body["order_id"].as_str().expect("id").to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let messages = nats.messages(ORDER_STREAM).await;
        if messages.iter().any(|m| m.payload["subject"] == id.as_str()) {
            return messages;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the fence order's event never arrived"
        );
        nats.wait_for_messages(ORDER_STREAM, messages.len() + 1)
            .await;
    }
}

fn order_id(res: &shared_testkit::TestResponse) -> String {
    res.body["order_id"].as_str().expect("order id").to_owned()
}

/// The ids of the orders [`one_change_of_each_kind`] made (rejected orders
/// answer a problem without an id).
struct Changed {
    confirmed_then_cancelled: String,
    pending_pricing: String,
    failed: String,
}

/// One order confirmed then cancelled, two rejected (stock, sku), one
/// `pending_pricing` (pricing down, sku never priced), one failed
/// (inventory down).
async fn one_change_of_each_kind(stack: &mut Stack) -> Changed {
    let confirmed = stack.place("c1", &[("A001", 2)]).await;
    confirmed.assert_status(201);
    let cancel = format!("/orders/{}/cancel", order_id(&confirmed));
    let cancelled = stack.order.client.post_json(&cancel, &json!({})).await;
    cancelled.assert_status(200);
    let no_stock = stack.place("c2", &[("A001", 10_000)]).await;
    no_stock.assert_problem(409, "insufficient_stock");
    let unknown = stack.place("c2", &[("Z999", 1)]).await;
    unknown.assert_problem(422, "unknown_sku");
    stack.stop_pricing().await;
    let unpriced = stack.place("c3", &[("B001", 1)]).await;
    unpriced.assert_status(201);
    assert_eq!(unpriced.body["status"], "pending_pricing");
    stack.start_pricing().await;
    stack.stop_inventory().await;
    let failed = stack.place("c4", &[("A001", 1)]).await;
    failed.assert_problem(503, "inventory_unavailable");
    stack.start_inventory().await;
    let listed = stack.order.client.get("/orders?customer_id=c4").await;
    Changed {
        confirmed_then_cancelled: order_id(&confirmed),
        pending_pricing: order_id(&unpriced),
        failed: listed.body["orders"][0]["order_id"]
            .as_str()
            .expect("the failed order is listed")
            .to_owned(),
    }
}

#[actix_web::test]
async fn every_status_change_publishes_one_event_that_matches_its_schema() {
    let nats = NatsServer::start().await;
    let mut stack = stack_with_events(&nats).await;
    let changed = one_change_of_each_kind(&mut stack).await;
    let (confirmed_id, failed_id) = (changed.confirmed_then_cancelled, changed.failed);

    let messages = fence(&stack, &nats).await;
    let mut by_order: HashMap<String, Vec<&StoredMessage>> = HashMap::new();
    for message in &messages {
        let subject = message.payload["subject"].as_str().expect("subject");
        by_order
            .entry(subject.to_owned())
            .or_default()
            .push(message);
        assert_eq!(message.subject, message.payload["type"], "{message:?}");
        assert_eq!(message.headers["Nats-Msg-Id"], message.payload["id"]);
        assert!(message.headers.contains_key("traceparent"), "{message:?}");
        let event_type = message.payload["type"].as_str().expect("type");
        assert_matches_schema(&schema_path(event_type), &message.payload);
    }
    let types = |id: &str| -> Vec<String> {
        by_order
            .get(id)
            .map(|ms| ms.iter().map(|m| m.subject.clone()).collect())
            .unwrap_or_default()
    };
    assert_eq!(
        types(&confirmed_id),
        ["shop.order.confirmed", "shop.order.cancelled"]
    );
    assert_eq!(
        types(&changed.pending_pricing),
        ["shop.order.pending_pricing"]
    );
    assert_eq!(types(&failed_id), ["shop.order.failed"]);
    // Rejected orders answer a problem; their ids come from the events.
    let rejected: Vec<&StoredMessage> = messages
        .iter()
        .filter(|m| m.subject == "shop.order.rejected")
        .collect();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    let reasons: HashSet<&str> = rejected
        .iter()
        .map(|m| m.payload["data"]["reason"].as_str().expect("reason"))
        .collect();
    assert_eq!(
        reasons,
        HashSet::from(["insufficient stock", "unknown sku"])
    );
    assert_eq!(messages.len(), 7, "one event per change, and the fence's");

    let data = &by_order[&confirmed_id][0].payload["data"];
    assert_eq!(
        *data,
        json!({"order_id": confirmed_id, "customer_id": "c1", "status": "confirmed",
               "lines": [{"sku": "A001", "quantity": 2, "unit_price": 899.99}],
               "total": 1799.98, "currency": "USD", "pricing_source": "live"})
    );
    assert!(
        by_order[&failed_id][0].payload["data"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("reserving stock failed")),
        "{:?}",
        by_order[&failed_id][0].payload
    );
}

#[actix_web::test]
async fn orders_placed_while_the_broker_is_down_all_succeed_and_their_events_follow_in_order() {
    let mut nats = NatsServer::start().await;
    let stack = stack_with_events(&nats).await;
    // C001 has stock for 500. The stream exists before the outage (the relay created it).
    fence(&stack, &nats).await;

    nats.stop();
    let placed: Vec<Value> = futures::stream::iter(0..200)
        .map(|n| {
            let stack = &stack;
            async move {
                let res = stack.place(&format!("c{n}"), &[("C001", 1)]).await;
                res.assert_status(201);
                res.body
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert_eq!(placed.len(), 200);
    nats.resume().await;

    let messages = nats.wait_for_messages(ORDER_STREAM, 201).await;
    let during: Vec<&StoredMessage> = messages.iter().skip(1).collect();
    assert_eq!(during.len(), 200, "every event once");
    let ids: Vec<&str> = during
        .iter()
        .map(|m| m.payload["id"].as_str().expect("id"))
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "published in the order of the outbox ids");
    let orders: HashSet<&str> = during
        .iter()
        .map(|m| m.payload["subject"].as_str().expect("subject"))
        .collect();
    let expected: HashSet<&str> = placed
        .iter()
        .map(|o| o["order_id"].as_str().expect("id"))
        .collect();
    assert_eq!(orders, expected);
    for message in during {
        assert_eq!(message.subject, "shop.order.confirmed");
    }
}

/// The value of `events_published_total` for `event_type` and `outcome` on
/// one replica.
async fn published_total(
    client: &shared_testkit::TestClient,
    event_type: &str,
    outcome: &str,
) -> f64 {
    let series = format!("events_published_total{{type=\"{event_type}\",outcome=\"{outcome}\"}} ");
    let res = client.get("/metrics").await;
    res.assert_status(200);
    res.text
        .lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

/// PostgreSQL only (`TEST_DATABASE_URL`): replicas there share one outbox,
/// and each claims rows with `FOR UPDATE SKIP LOCKED`.
#[actix_web::test]
async fn two_replicas_relaying_one_outbox_publish_each_event_once_in_order_per_order() {
    if std::env::var("TEST_DATABASE_URL").map_or(true, |url| url.is_empty()) {
        eprintln!("skipped: two relays on one outbox need PostgreSQL (TEST_DATABASE_URL)");
        return;
    }
    let nats = NatsServer::start().await;
    let stack = stack_with_events(&nats).await;
    let inventory = stack.inventory.as_ref().expect("inventory runs");
    let replica = stack
        .order_replica(format!("http://127.0.0.1:{}", inventory.port))
        .await;
    let replicas = [stack.order.client.clone(), replica.client.clone()];

    // 60 orders, each placed on one replica and cancelled on the other.
    let placed: Vec<String> = futures::stream::iter(0..60usize)
        .map(|n| {
            let (a, b) = (replicas[n % 2].clone(), replicas[(n + 1) % 2].clone());
            async move {
                let body = crate::helpers::order_body(&format!("c{n}"), &[("C002", 1)]);
                let res = a.post_json("/orders", &body).await;
                res.assert_status(201);
                let id = order_id(&res);
                b.post_json(&format!("/orders/{id}/cancel"), &json!({}))
                    .await
                    .assert_status(200);
                id
            }
        })
        .buffer_unordered(6)
        .collect()
        .await;

    let messages = nats.wait_for_messages(ORDER_STREAM, 120).await;
    assert_eq!(messages.len(), 120);
    let mut by_order: HashMap<&str, Vec<&str>> = HashMap::new();
    for message in &messages {
        by_order
            .entry(message.payload["subject"].as_str().expect("subject"))
            .or_default()
            .push(message.subject.as_str());
    }
    for id in &placed {
        assert_eq!(
            by_order.get(id.as_str()).map(Vec::as_slice),
            Some(&["shop.order.confirmed", "shop.order.cancelled"][..]),
            "{id}"
        );
    }
    // Once each: no replica published what the other had (JetStream would
    // have dropped it, but the relay would have counted a duplicate).
    for event_type in ["shop.order.confirmed", "shop.order.cancelled"] {
        let mut published = 0.0;
        for client in &replicas {
            assert_eq!(published_total(client, event_type, "duplicate").await, 0.0);
            published += published_total(client, event_type, "published").await;
        }
        assert_eq!(published, 60.0, "{event_type}");
    }
}
