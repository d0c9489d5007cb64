//! `GET /events/stream` and the dead-letter admin routes, through a real
//! nats-server.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use shared::events::CloudEvent;
use shared::testing::issuer::TestIssuer;
use shared::testing::nats::NatsServer;

use crate::consumers::{
    pending_order, producer_streams, publish, reservation_expired, wait_consumed,
};
use crate::helpers::{Stack, spawn_stack, spawn_stack_with};

/// One SSE frame: its `event:`, `id:` and `data:` (as JSON).
#[derive(Debug)]
struct Frame {
    event: String,
    id: String,
    data: Value,
}

fn parse_frame(text: &str) -> Option<Frame> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|v| v.trim_start().to_owned())
    };
    Some(Frame {
        event: field("event:")?,
        id: field("id:")?,
        data: serde_json::from_str(&field("data:")?).ok()?,
    })
}

fn stock_changed(n: u32) -> CloudEvent {
    let data = json!({"sku": "A005", "stock": 300 + n, "delta": n, "reason": "restock"});
    CloudEvent::new("inventory", "shop.inventory.stock_changed", "A005", &data).expect("event")
}

#[actix_web::test]
async fn the_stream_relays_the_shops_events_as_server_sent_events() {
    let nats = NatsServer::start().await;
    let _broker = producer_streams(&nats).await;
    let stack = spawn_stack_with({
        let events = nats.events_config();
        move |c| c.order.events = events
    })
    .await;
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish();
    let url = format!("{}/events/stream", stack.order.client.base);
    let mut res = client.get(url).send().await.expect("the stream opens");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );

    // The feed follows each stream from when it attaches: publish (a
    // restock, as inventory would) until one comes through.
    let mut published = Vec::new();
    let mut buffer = String::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    let frame = 'read: loop {
        assert!(
            Instant::now() < deadline,
            "no event came through: {buffer:?}"
        );
        let event = stock_changed(u32::try_from(published.len()).expect("few"));
        publish(&nats, &event, &event.id).await;
        published.push(event);
        while let Ok(Some(chunk)) =
            actix_web::rt::time::timeout(Duration::from_millis(500), res.next()).await
        {
            buffer.push_str(std::str::from_utf8(&chunk.expect("a chunk")).expect("utf-8"));
            while let Some((text, rest)) = buffer.split_once("\n\n") {
                let frame = parse_frame(text);
                buffer = rest.to_owned();
                if let Some(frame) = frame {
                    break 'read frame;
                }
            }
        }
    };
    let event = published
        .iter()
        .find(|e| e.id == frame.id)
        .unwrap_or_else(|| panic!("not an event published: {frame:?}"));
    assert_eq!(frame.event, "shop.inventory.stock_changed");
    assert_eq!(frame.data, serde_json::to_value(event).expect("json"));
}

#[actix_web::test]
async fn the_stream_is_503_events_off_without_a_broker() {
    let stack = spawn_stack().await;
    let res = stack.order.client.get("/events/stream").await;
    res.assert_problem(503, "events_off");
    let res = stack.order.client.get("/admin/dead-letters").await;
    res.assert_problem(503, "events_off");
}

/// A stack with auth required and events on, whose `order-expiries`
/// consumer dead-lettered the expiry of a pending order (inventory was down
/// on every delivery; it is up again). Returns the order and the event.
async fn dead_lettered_expiry(
    issuer: &TestIssuer,
    nats: &NatsServer,
) -> (Stack, order::domain::OrderId, CloudEvent) {
    let mut stack = spawn_stack_with({
        let (events, auth) = (nats.events_config(), issuer.auth_config(true));
        move |c| {
            c.order.events = events;
            c.order.server.auth = auth;
            c.order.breaker.failure_threshold = 1000;
        }
    })
    .await;
    let id = pending_order(&stack, "c7", "A001", 1).await;
    stack.stop_inventory().await;
    let expired = reservation_expired(&id);
    publish(nats, &expired, &expired.id).await;
    let admin = stack
        .order
        .client
        .with_bearer(&issuer.token("ops", &["orders:admin"]));
    wait_consumed(&admin, "order-expiries", "dead_lettered", 1.0).await;
    stack.start_inventory().await;
    (stack, id, expired)
}

#[actix_web::test]
async fn dead_letters_are_listed_and_replayed_by_orders_admin_only() {
    let issuer = TestIssuer::start();
    let nats = NatsServer::start().await;
    let _broker = producer_streams(&nats).await;
    let (stack, id, expired) = dead_lettered_expiry(&issuer, &nats).await;
    let admin = stack
        .order
        .client
        .with_bearer(&issuer.token("ops", &["orders:admin"]));
    let customer = stack.order.client.with_bearer(&issuer.token("c7", &[]));
    stack
        .order
        .client
        .get("/admin/dead-letters")
        .await
        .assert_problem(401, "unauthorized");
    customer
        .get("/admin/dead-letters")
        .await
        .assert_problem(403, "forbidden");
    let listed = admin.get("/admin/dead-letters").await;
    listed.assert_status(200);
    assert_eq!(listed.body["count"], 1, "{}", listed.body);
    let letter = &listed.body["dead_letters"][0];
    assert_eq!(letter["consumer"], "order-expiries");
    assert_eq!(letter["event"]["id"], expired.id.as_str());
    assert_eq!(letter["deliveries"], nats.events_config().max_deliver);
    assert!(
        letter["reason"]
            .as_str()
            .is_some_and(|r| r.contains("releasing its stock failed")),
        "{letter}"
    );
    let sequence = letter["sequence"].as_u64().expect("sequence");
    let replay = format!("/admin/dead-letters/{sequence}/replay");
    customer
        .post_json(&replay, &json!({}))
        .await
        .assert_problem(403, "forbidden");

    let replayed = admin.post_json(&replay, &json!({})).await;
    replayed.assert_status(200);
    assert_eq!(
        replayed.body,
        json!({"sequence": sequence, "outcome": "applied"})
    );
    let order = admin.get(&format!("/orders/{id}")).await;
    assert_eq!(order.body["status"], "failed", "{}", order.body);
    let listed = admin.get("/admin/dead-letters").await;
    assert_eq!(listed.body["count"], 0, "{}", listed.body);
    admin
        .post_json(&replay, &json!({}))
        .await
        .assert_problem(404, "dead_letter_not_found");
    admin
        .post_json("/admin/dead-letters/x1/replay", &json!({}))
        .await
        .assert_problem(404, "dead_letter_not_found");
}
