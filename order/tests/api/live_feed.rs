//! The live feed at its edges: a listener shown none of the events flowing
//! still gets its keep-alives, and a listener that went away is noticed and
//! given back while others' events flow.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use serde_json::json;
use shared_events::CloudEvent;
use shared_testkit::issuer::TestIssuer;
use shared_testkit::nats::NatsServer;

use crate::consumers::producer_streams;
use crate::helpers::{Stack, StackConfig, spawn_stack_with};
use crate::live::{Listener, request_stream};

/// The keep-alive period of these tests' order service (15 s in production).
const KEEP_ALIVE: Duration = Duration::from_millis(500);

/// Order with events on against `nats`, tokens of `issuer` verified but not
/// required (a listener without one sees no order event), a short
/// keep-alive; `adjust` sets the rest.
async fn stack_hiding_orders(
    issuer: &TestIssuer,
    nats: &NatsServer,
    adjust: impl FnOnce(&mut StackConfig) + 'static,
) -> Stack {
    let (events, auth) = (nats.events_config(), issuer.auth_config(false));
    spawn_stack_with(move |c| {
        c.order.events = events;
        c.order.events.feed_keep_alive = KEEP_ALIVE;
        c.order.server.auth = auth;
        adjust(c);
    })
    .await
}

/// An order event of a customer no listener here is: hidden from anyone
/// but `orders:admin`.
fn someone_elses_order(n: u32) -> CloudEvent {
    let data = json!({"order_id": format!("o-{n}"), "customer_id": "someone-else"});
    CloudEvent::new("order", "shop.order.confirmed", &format!("o-{n}"), &data).expect("event")
}

/// Order events published every 50 ms (ten times a keep-alive period)
/// until dropped.
struct Flow(tokio::task::JoinHandle<()>);

impl Flow {
    async fn start(nats: &NatsServer) -> Self {
        let broker = producer_streams(nats).await;
        broker
            .ensure_service_stream("order")
            .await
            .expect("order's stream");
        let js = nats.jetstream().await;
        Self(tokio::spawn(async move {
            for n in 0.. {
                publish(&js, &someone_elses_order(n)).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }))
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn publish(js: &jetstream::Context, event: &CloudEvent) {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", event.id.as_str());
    let body = serde_json::to_vec(event).expect("json");
    js.publish_with_headers(event.event_type.clone(), headers, body.into())
        .await
        .expect("published")
        .await
        .expect("stored");
}

/// Waits until `admin` (shown every order) sees the flow: the feed follows
/// order's stream, and the flow's events reach every listener.
async fn until_flowing(admin: &mut Listener) {
    let frame = admin.next_frame(Duration::from_secs(20)).await;
    let frame = frame.expect("the flow never reached the feed");
    assert_eq!(frame.event, "shop.order.confirmed");
}

#[actix_web::test]
async fn a_listener_shown_none_of_the_events_flowing_still_gets_keep_alives() {
    let issuer = TestIssuer::start();
    let nats = NatsServer::start().await;
    let stack = stack_hiding_orders(&issuer, &nats, |_| {}).await;
    let admin_token = issuer.token("ops", &["orders:admin"]);
    let mut admin = Listener::open(&stack, Some(&admin_token)).await;
    let mut anonymous = Listener::open(&stack, None).await;
    let _flow = Flow::start(&nats).await;
    until_flowing(&mut admin).await;
    // What was written before the flow reached the feed does not count.
    let (_, before) = anonymous.until_end(Duration::from_millis(100)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ended, text) = anonymous.until_end(KEEP_ALIVE).await;
        assert!(!ended, "the stream ended: {text:?}");
        let keep_alives = text[before.len()..].matches(": keep-alive").count();
        if keep_alives >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{keep_alives} keep-alives while hidden events flowed: {text:?}"
        );
    }
    // The flow was flowing all along.
    until_flowing(&mut admin).await;
}

#[actix_web::test]
async fn a_listener_gone_while_hidden_events_flow_gives_its_place_back() {
    let issuer = TestIssuer::start();
    let nats = NatsServer::start().await;
    let stack = stack_hiding_orders(&issuer, &nats, |c| {
        c.order.events.streams_per_caller = 1;
    })
    .await;
    let admin_token = issuer.token("ops", &["orders:admin"]);
    let mut admin = Listener::open(&stack, Some(&admin_token)).await;
    // An anonymous caller is told apart by its address: one stream each.
    let anonymous = Listener::open(&stack, None).await;
    let refused = request_stream(&stack, None, &[]).await;
    assert_eq!(refused.status().as_u16(), 429);
    let _flow = Flow::start(&nats).await;
    until_flowing(&mut admin).await;
    drop(anonymous);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let res = request_stream(&stack, None, &[]).await;
        if res.status().as_u16() == 200 {
            break;
        }
        assert_eq!(res.status().as_u16(), 429);
        assert!(
            Instant::now() < deadline,
            "the dropped listener still holds its place"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    until_flowing(&mut admin).await;
}
