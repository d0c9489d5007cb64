//! The live feed at its edges: a listener shown none of the events flowing
//! still gets its keep-alives, a listener that went away is noticed and
//! given back while others' events flow, and a listener that comes back
//! with `Last-Event-ID` gets what it missed from the streams, whatever this
//! process saw.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use serde_json::json;
use shared_events::CloudEvent;
use shared_testkit::issuer::TestIssuer;
use shared_testkit::nats::NatsServer;

use crate::consumers::producer_streams;
use crate::helpers::{Stack, StackConfig, spawn_stack_with};
use crate::live::{Listener, events_stack, request_stream, stock_changed};

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

/// Every producer's stream, order's included (its relay makes it a moment
/// after it starts); the broker that made them.
async fn all_streams(nats: &NatsServer) -> shared_events::Broker {
    let broker = producer_streams(nats).await;
    broker
        .ensure_service_stream("order")
        .await
        .expect("order's stream");
    broker
}

impl Flow {
    async fn start(nats: &NatsServer) -> Self {
        let _broker = all_streams(nats).await;
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

/// A listener that saw events flow and went away: the id of the last event
/// it saw (what it sends back as `Last-Event-ID`).
async fn listened_then_gone(nats: &NatsServer, stack: &Stack, n: &mut u32) -> String {
    let mut first = Listener::open(stack, None).await;
    let (last, _) = warm_up(nats, &mut first, n).await;
    last
}

/// Publishes restocks until `listener` sees one (the feed attaches a moment
/// after a listener arrives), then reads what else came: the last id seen,
/// and the ids published.
async fn warm_up(nats: &NatsServer, listener: &mut Listener, n: &mut u32) -> (String, Vec<String>) {
    let js = nats.jetstream().await;
    let mut published = Vec::new();
    loop {
        assert!(published.len() < 30, "the feed never went live");
        *n += 1;
        let event = stock_changed(*n);
        publish(&js, &event).await;
        published.push(event.id);
        if let Some(frame) = listener.next_frame(Duration::from_millis(500)).await {
            let mut last = frame.id;
            while let Some(frame) = listener.next_frame(Duration::from_millis(500)).await {
                last = frame.id;
            }
            return (last, published);
        }
    }
}

/// Publishes `count` events, restocks and orders in turn (two streams); their ids.
async fn publish_some(nats: &NatsServer, count: u32, n: &mut u32) -> Vec<String> {
    let js = nats.jetstream().await;
    let mut ids = Vec::new();
    for k in 0..count {
        *n += 1;
        let event = if k % 2 == 0 {
            stock_changed(*n)
        } else {
            someone_elses_order(*n)
        };
        publish(&js, &event).await;
        ids.push(event.id);
    }
    ids
}

/// `back` first gets exactly `missed`, in order, then the live events,
/// without a repeat.
async fn assert_gets_missed_then_live(nats: &NatsServer, back: &mut Listener, missed: &[String]) {
    let mut got = Vec::new();
    while got.len() < missed.len() {
        let frame = back.next_frame(Duration::from_secs(15)).await;
        let frame = frame.unwrap_or_else(|| panic!("only {got:?} of {missed:?} came"));
        got.push(frame.id);
    }
    assert_eq!(got, missed);
    let live = stock_changed(999);
    publish(&nats.jetstream().await, &live).await;
    let next = back.next_frame(Duration::from_secs(15)).await;
    assert_eq!(next.map(|f| f.id), Some(live.id), "the live event, next");
    let more = back.next_frame(Duration::from_secs(1)).await;
    assert!(more.is_none(), "a repeat: {more:?}");
}

#[actix_web::test]
async fn a_listener_back_after_a_restart_with_nobody_listening_gets_exactly_what_it_missed() {
    let nats = NatsServer::start().await;
    let (mut stack, _broker) = events_stack(&nats).await;
    let _streams = all_streams(&nats).await;
    let mut n = 0;
    let last = listened_then_gone(&nats, &stack, &mut n).await;
    // A new process: it has seen nothing, and nobody listens to it.
    stack.restart_order().await;
    let missed = publish_some(&nats, 4, &mut n).await;
    let mut back = Listener::open_with(&stack, None, &[("Last-Event-ID", &last)]).await;
    assert_gets_missed_then_live(&nats, &mut back, &missed).await;
}

#[actix_web::test]
async fn a_listener_back_after_the_feed_stopped_for_want_of_listeners_gets_what_it_missed() {
    let nats = NatsServer::start().await;
    let _streams = all_streams(&nats).await;
    let stack = spawn_stack_with({
        let events = nats.events_config();
        move |c| {
            c.order.events = events;
            c.order.events.feed_keep_alive = KEEP_ALIVE;
        }
    })
    .await;
    let mut n = 0;
    let last = listened_then_gone(&nats, &stack, &mut n).await;
    // The same process, whose followers stop once nobody has listened for
    // the feed's linger (the listener gone is noticed at its next
    // keep-alive; then 5 s, then up to 1 s): what it remembers ends there.
    tokio::time::sleep(Duration::from_millis(8000)).await;
    let missed = publish_some(&nats, 4, &mut n).await;
    let mut back = Listener::open_with(&stack, None, &[("Last-Event-ID", &last)]).await;
    assert_gets_missed_then_live(&nats, &mut back, &missed).await;
}

#[actix_web::test]
async fn a_listener_back_while_others_listen_gets_exactly_what_it_missed() {
    let nats = NatsServer::start().await;
    let (mut stack, _broker) = events_stack(&nats).await;
    let _streams = all_streams(&nats).await;
    let mut n = 0;
    let last = listened_then_gone(&nats, &stack, &mut n).await;
    // A new process whose feed runs for someone else: what it passes on
    // from now is handed over to the returning listener after what is read
    // back from the streams, each event once.
    stack.restart_order().await;
    let mut other = Listener::open(&stack, None).await;
    let (_, mut missed) = warm_up(&nats, &mut other, &mut n).await;
    missed.extend(publish_some(&nats, 4, &mut n).await);
    let mut back = Listener::open_with(&stack, None, &[("Last-Event-ID", &last)]).await;
    assert_gets_missed_then_live(&nats, &mut back, &missed).await;
}

#[actix_web::test]
async fn a_listener_whose_last_event_is_not_held_is_told_events_may_have_been_skipped() {
    let nats = NatsServer::start().await;
    let (stack, _broker) = events_stack(&nats).await;
    let _streams = all_streams(&nats).await;
    let mut n = 0;
    let mut first = Listener::open(&stack, None).await;
    warm_up(&nats, &mut first, &mut n).await;
    // An id never sent (as one aged out of the streams), and one of
    // another shape.
    let never_sent = stock_changed(0).id;
    for id in [never_sent.as_str(), "evt-1"] {
        let mut back = Listener::open_with(&stack, None, &[("Last-Event-ID", id)]).await;
        let (ended, text) = back.until_end(Duration::from_secs(2)).await;
        assert!(!ended, "{text:?}");
        assert!(
            text.contains("events may have been skipped"),
            "{id}: {text:?}"
        );
        // Then the live events, as to anyone.
        let live = stock_changed(900 + n);
        n += 1;
        publish(&nats.jetstream().await, &live).await;
        let frame = back.next_frame(Duration::from_secs(15)).await;
        assert_eq!(frame.map(|f| f.id), Some(live.id));
    }
}

#[actix_web::test]
async fn a_last_event_id_not_of_an_ids_shape_is_400_never_a_5xx() {
    let nats = NatsServer::start().await;
    let (stack, _broker) = events_stack(&nats).await;
    let long = "a".repeat(65);
    for bad in [
        long.as_str(),
        "a b",
        "<script>",
        "é",
        "../../etc",
        "id;drop",
    ] {
        // The status first: a stream that opened would never end.
        let mut res = request_stream(&stack, None, &[("Last-Event-ID", bad)]).await;
        assert_eq!(res.status().as_u16(), 400, "{bad:?}");
        let body = res.body().await.expect("a body");
        let problem: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(problem["code"], "invalid_request", "{problem}");
    }
}

#[actix_web::test]
async fn a_returning_listener_is_shown_of_what_it_missed_only_what_it_may_see() {
    let issuer = TestIssuer::start();
    let nats = NatsServer::start().await;
    let mut stack = stack_hiding_orders(&issuer, &nats, |_| {}).await;
    let _streams = all_streams(&nats).await;
    let mut n = 0;
    let last = listened_then_gone(&nats, &stack, &mut n).await;
    stack.restart_order().await;
    // Restocks and someone else's orders in turn: without a token, only the
    // restocks, in their public form.
    let published = publish_some(&nats, 6, &mut n).await;
    let restocks: Vec<String> = published.iter().step_by(2).cloned().collect();
    let mut back = Listener::open_with(&stack, None, &[("Last-Event-ID", &last)]).await;
    let mut got = Vec::new();
    while got.len() < restocks.len() {
        let frame = back.next_frame(Duration::from_secs(15)).await;
        let frame = frame.unwrap_or_else(|| panic!("only {got:?} of {restocks:?} came"));
        assert_eq!(frame.event, "shop.inventory.stock_changed", "{frame:?}");
        got.push(frame.id);
    }
    assert_eq!(got, restocks);
}

#[actix_web::test]
async fn a_listener_that_missed_more_than_the_catch_up_reads_is_told_so() {
    let nats = NatsServer::start().await;
    let (mut stack, _broker) = events_stack(&nats).await;
    let _streams = all_streams(&nats).await;
    let mut n = 0;
    let last = listened_then_gone(&nats, &stack, &mut n).await;
    stack.restart_order().await;
    // One more restock than the catch-up reads of a stream (1,000).
    let js = nats.jetstream().await;
    for k in 0..1001 {
        publish(&js, &stock_changed(2000 + k)).await;
    }
    let mut back = Listener::open_with(&stack, None, &[("Last-Event-ID", &last)]).await;
    let (ended, text) = back.until_end(Duration::from_secs(5)).await;
    assert!(!ended, "{text:?}");
    assert!(text.contains("events may have been skipped"), "{text:?}");
    assert!(!text.contains("data:"), "none of the missed: {text:?}");
}
