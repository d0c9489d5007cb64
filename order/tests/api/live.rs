//! `GET /events/stream` and the dead-letter admin routes, through a real
//! nats-server.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use shared_events::CloudEvent;
use shared_events::broker::stream_name;
use shared_testkit::issuer::TestIssuer;
use shared_testkit::nats::NatsServer;

use crate::consumers::{
    pending_order, producer_streams, publish, reservation_expired, wait_consumed,
};
use crate::helpers::{Stack, spawn_stack_with};

/// One SSE frame: its `event:`, `id:` and `data:` (as JSON).
#[derive(Debug)]
pub struct Frame {
    pub event: String,
    pub id: String,
    pub data: Value,
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

pub fn stock_changed(n: u32) -> CloudEvent {
    let data = json!({"sku": "A005", "stock": 300 + n, "delta": n, "reason": "restock"});
    CloudEvent::new("inventory", "shop.inventory.stock_changed", "A005", &data).expect("event")
}

/// A stack whose order service has events on, and the producers' streams
/// (the broker that made them is kept for the test's length).
pub async fn events_stack(nats: &NatsServer) -> (Stack, shared_events::Broker) {
    let broker = producer_streams(nats).await;
    let stack = spawn_stack_with({
        let events = nats.events_config();
        move |c| c.order.events = events
    })
    .await;
    (stack, broker)
}

#[actix_web::test]
async fn the_stream_relays_the_shops_events_as_server_sent_events() {
    let nats = NatsServer::start().await;
    let (stack, _broker) = events_stack(&nats).await;
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

/// The consumers JetStream holds on order's own stream: only the live
/// feed's followers consume it.
async fn order_stream_consumers(nats: &NatsServer) -> Vec<String> {
    let stream = nats
        .jetstream()
        .await
        .get_stream(stream_name("order"))
        .await
        .expect("order's stream");
    let names: Vec<_> = stream.consumer_names().collect().await;
    names.into_iter().map(|n| n.expect("a name")).collect()
}

/// Places orders until `listener` sees one (its follower attaches a moment
/// after it arrives).
async fn place_until_seen(stack: &Stack, listener: &mut Listener) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let res = stack.place("c1", &[("A002", 1)]).await;
        res.assert_status(201);
        let id = res.body["order_id"].as_str().expect("id").to_owned();
        let seen = actix_web::rt::time::timeout(Duration::from_secs(2), listener.until(&id)).await;
        if seen.is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "the listener never saw an order");
    }
}

#[actix_web::test]
async fn the_feed_follows_the_streams_only_while_someone_listens() {
    let nats = NatsServer::start().await;
    let (stack, _broker) = events_stack(&nats).await;
    // Nobody listens: order's events are published, and nothing reads them.
    stack.place("c1", &[("A002", 1)]).await.assert_status(201);
    nats.wait_for_messages(&stream_name("order"), 1).await;
    for _ in 0..20 {
        assert_eq!(order_stream_consumers(&nats).await, Vec::<String>::new());
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    // The first listener starts the followers.
    let mut first = Listener::open(&stack, None).await;
    place_until_seen(&stack, &mut first).await;
    let followed = order_stream_consumers(&nats).await;
    assert_eq!(followed.len(), 1, "{followed:?}");
    // The last listener leaves (its connection is found closed when events
    // are written to it): the follower stops once nobody has come back for
    // the feed's linger (5 s), so the next listener starts a consumer of its
    // own. JetStream forgets a stopped one only after its inactivity
    // threshold, so the old one may still be listed.
    drop(first);
    for _ in 0..3 {
        stack.place("c1", &[("A002", 1)]).await.assert_status(201);
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    actix_web::rt::time::sleep(Duration::from_millis(7500)).await;
    let mut second = Listener::open(&stack, None).await;
    place_until_seen(&stack, &mut second).await;
    let now = order_stream_consumers(&nats).await;
    assert!(
        now.iter().any(|name| !followed.contains(name)),
        "no new consumer: {followed:?} then {now:?}"
    );
}

#[actix_web::test]
async fn without_a_broker_the_event_routes_do_not_exist() {
    let issuer = TestIssuer::start();
    let stack = spawn_stack_with({
        let auth = issuer.auth_config(false);
        move |c| c.order.server.auth = auth
    })
    .await;
    // Not there for anyone, an admin included: unknown paths, as any other.
    let admin = stack
        .order
        .client
        .with_bearer(&issuer.token("ops", &["orders:admin"]));
    for client in [&stack.order.client, &admin] {
        for path in ["/events/stream", "/admin/dead-letters"] {
            client.get(path).await.assert_problem(404, "not_found");
        }
        let replay = "/admin/dead-letters/1/replay";
        let res = client.post_json(replay, &json!({})).await;
        res.assert_problem(404, "not_found");
    }
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

/// One listener of the feed: its answer and what it has read so far.
pub struct Listener {
    res: awc::ClientResponse,
    buffer: String,
}

/// Asks for the stream with `token` and extra `headers`, whatever the answer.
pub async fn request_stream(
    stack: &Stack,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> awc::ClientResponse {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish();
    let mut request = client.get(format!("{}/events/stream", stack.order.client.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.insert_header((*name, *value));
    }
    request.send().await.expect("the stream answers")
}

impl Listener {
    pub async fn open(stack: &Stack, token: Option<&str>) -> Self {
        Self::open_with(stack, token, &[]).await
    }

    pub async fn open_with(stack: &Stack, token: Option<&str>, headers: &[(&str, &str)]) -> Self {
        let res = request_stream(stack, token, headers).await;
        assert_eq!(res.status().as_u16(), 200);
        Self {
            res,
            buffer: String::new(),
        }
    }

    /// The next frame, if one comes within `wait`.
    pub async fn next_frame(&mut self, wait: Duration) -> Option<Frame> {
        let deadline = Instant::now() + wait;
        loop {
            while let Some((text, rest)) = self.buffer.split_once("\n\n") {
                let frame = parse_frame(text);
                self.buffer = rest.to_owned();
                if frame.is_some() {
                    return frame;
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match actix_web::rt::time::timeout(left, self.res.next()).await {
                Ok(Some(chunk)) => self
                    .buffer
                    .push_str(std::str::from_utf8(&chunk.expect("chunk")).expect("utf-8")),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Reads until the server ends the stream, or `wait` passes; whether it
    /// ended, and what was left unparsed (comments included).
    pub async fn until_end(&mut self, wait: Duration) -> (bool, String) {
        let deadline = Instant::now() + wait;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match actix_web::rt::time::timeout(left, self.res.next()).await {
                Ok(Some(Ok(chunk))) => self
                    .buffer
                    .push_str(std::str::from_utf8(&chunk).expect("utf-8")),
                Ok(Some(Err(_)) | None) => return (true, self.buffer.clone()),
                Err(_) => break,
            }
        }
        (false, self.buffer.clone())
    }

    /// The frames up to and including the first about `marker` (a
    /// subject); every listener is offered the same frames in the same order.
    pub async fn until(&mut self, marker: &str) -> Vec<Frame> {
        self.until_frame(|frame| frame.data["subject"] == marker)
            .await
    }

    /// The frames up to and including the first `last` says is the last.
    pub async fn until_frame(&mut self, last: impl Fn(&Frame) -> bool) -> Vec<Frame> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut frames = Vec::new();
        while Instant::now() < deadline {
            if let Some(frame) = self.next_frame(Duration::from_millis(500)).await {
                let done = last(&frame);
                frames.push(frame);
                if done {
                    return frames;
                }
            }
        }
        panic!("not the last frame awaited: {frames:?}");
    }
}

pub fn order_ids(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f.event.starts_with("shop.order."))
        .map(|f| f.data["subject"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[actix_web::test]
async fn with_tokens_required_each_listener_sees_the_catalogue_and_only_the_orders_it_may() {
    let issuer = TestIssuer::start();
    let nats = NatsServer::start().await;
    let stack = spawn_stack_with({
        let (events, auth) = (nats.events_config(), issuer.auth_config(true));
        move |c| {
            c.order.events = events.clone();
            c.inventory.events = events;
            c.order.server.auth = auth;
        }
    })
    .await;
    let (c1, c2) = (issuer.token("c1", &[]), issuer.token("c2", &[]));
    let admin_token = issuer.token("ops", &["orders:admin"]);
    let mut anonymous = Listener::open(&stack, None).await;
    let mut own = Listener::open(&stack, Some(&c1)).await;
    let mut admin = Listener::open(&stack, Some(&admin_token)).await;
    let restock = |sku: &'static str| {
        let client = stack.inventory_client.clone();
        async move {
            let body = json!({"delta": 5, "reason": "delivery"});
            client
                .post_json(&format!("/items/{sku}/stock"), &body)
                .await
                .assert_status(200);
        }
    };
    // The feed follows each stream from when it attaches: order (as a
    // third customer) and restock until the admin's listener sees both.
    // The streams are relayed apart, so a warm-up order's event can still
    // arrive after the restock that ended the warm-up: those are left out.
    let c3 = stack.order.client.with_bearer(&issuer.token("c3", &[]));
    let mut warm_ups = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let warm_up = c3
            .post_json(
                "/orders",
                &json!({"items": [{"sku": "A002", "quantity": 1}]}),
            )
            .await;
        warm_up.assert_status(201);
        warm_ups.push(warm_up.body["order_id"].as_str().expect("id").to_owned());
        restock("A005").await;
        let seen = actix_web::rt::time::timeout(Duration::from_secs(2), admin.until("A005")).await;
        if seen.is_ok_and(|frames| !order_ids(&frames).is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "the feed never went live");
    }
    let mut placed = Vec::new();
    for token in [&c1, &c2] {
        let res = stack
            .order
            .client
            .with_bearer(token)
            .post_json(
                "/orders",
                &json!({"items": [{"sku": "A001", "quantity": 1}]}),
            )
            .await;
        res.assert_status(201);
        placed.push(res.body["order_id"].as_str().expect("id").to_owned());
    }
    // Once the admin has both orders, a last restock marks the end.
    let not_warm_up = |id: &String| !warm_ups.contains(id);
    let mut seen_by_admin = Vec::new();
    while seen_by_admin.len() < 2 {
        restock("A004").await;
        let frames = admin.until("A004").await;
        seen_by_admin.extend(order_ids(&frames).into_iter().filter(not_warm_up));
    }
    restock("A003").await;
    let frames = admin.until("A003").await;
    seen_by_admin.extend(order_ids(&frames).into_iter().filter(not_warm_up));
    assert_eq!(seen_by_admin, placed, "orders:admin sees every order");
    let seen_by_c1 = order_ids(&own.until("A003").await);
    assert_eq!(
        seen_by_c1,
        vec![placed[0].clone()],
        "a customer sees its own orders only"
    );
    let anonymous_frames = anonymous.until("A003").await;
    assert!(
        order_ids(&anonymous_frames).is_empty(),
        "no order events for an anonymous listener"
    );
    assert!(
        anonymous_frames
            .iter()
            .any(|f| f.event == "shop.inventory.stock_changed")
    );
}
