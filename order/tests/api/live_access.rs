//! Who holds the live feed's streams, for how long, and what each is shown:
//! a stream ends with its token, a listener coming back with `Last-Event-ID`
//! misses nothing, each caller holds a few streams at most, and a listener
//! without a token sees no staff member, order or reservation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use shared_testkit::issuer::TestIssuer;
use shared_testkit::nats::NatsServer;

use crate::consumers::{producer_streams, publish, reservation_expired};
use crate::helpers::{Stack, StackConfig, spawn_stack_with};
use crate::live::{Frame, Listener, events_stack, request_stream, stock_changed};

/// A token of `issuer` for `subject` that expires `seconds` from now.
fn token_expiring_in(issuer: &TestIssuer, subject: &str, seconds: u64) -> (String, SystemTime) {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        + seconds;
    let mut claims = issuer.claims(subject, &[]);
    claims["exp"] = json!(exp);
    let token = issuer.signer().sign(&claims);
    (token, UNIX_EPOCH + Duration::from_secs(exp))
}

/// Order with events on against `nats` and tokens of `issuer` verified
/// (`required` or not); `adjust` sets the rest.
async fn stack_with_tokens(
    issuer: &TestIssuer,
    nats: &NatsServer,
    required: bool,
    adjust: impl FnOnce(&mut StackConfig) + 'static,
) -> Stack {
    let (events, auth) = (nats.events_config(), issuer.auth_config(required));
    spawn_stack_with(move |c| {
        c.order.events = events;
        c.order.server.auth = auth;
        adjust(c);
    })
    .await
}

#[actix_web::test]
async fn a_stream_opened_with_a_token_ends_when_the_token_expires() {
    let issuer = TestIssuer::start();
    let nats = NatsServer::start().await;
    let _broker = producer_streams(&nats).await;
    let stack = stack_with_tokens(&issuer, &nats, true, |_| {}).await;
    let (token, expires) = token_expiring_in(&issuer, "c1", 2);
    let mut listener = Listener::open(&stack, Some(&token)).await;
    // Without an end the stream would only ever write keep-alives.
    let (ended, rest) = listener.until_end(Duration::from_secs(20)).await;
    assert!(ended, "the stream outlived its token: {rest:?}");
    assert!(SystemTime::now() >= expires, "the stream ended early");
    assert!(rest.contains("token expired"), "{rest:?}");
    // The verifier allows for clock skew; the stream does not take the
    // expired token back.
    let again = request_stream(&stack, Some(&token), &[]).await;
    assert_eq!(again.status().as_u16(), 401);
    // A fresh token opens it again.
    let fresh = issuer.token("c1", &[]);
    Listener::open(&stack, Some(&fresh)).await;
}

#[actix_web::test]
async fn a_listener_that_comes_back_with_last_event_id_misses_nothing() {
    let nats = NatsServer::start().await;
    let (stack, _broker) = events_stack(&nats).await;
    let mut first = Listener::open(&stack, None).await;
    // The feed follows each stream from when it attaches: publish until one
    // comes through.
    let mut n = 0;
    let seen = loop {
        let event = stock_changed(n);
        n += 1;
        publish(&nats, &event, &event.id).await;
        if let Some(frame) = first.next_frame(Duration::from_millis(500)).await {
            break frame;
        }
        assert!(n < 30, "the feed never went live");
    };
    // Drain what else the warm-up sent, then leave.
    let mut last = seen.id;
    while let Some(frame) = first.next_frame(Duration::from_millis(500)).await {
        last = frame.id;
    }
    drop(first);
    let mut missed = Vec::new();
    for k in 0..3 {
        let event = stock_changed(100 + k);
        publish(&nats, &event, &event.id).await;
        missed.push(event.id);
    }
    let mut back = Listener::open_with(&stack, None, &[("Last-Event-ID", &last)]).await;
    let mut got = Vec::new();
    while got.len() < missed.len() {
        let frame = back
            .next_frame(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("only {got:?} of {missed:?} came"));
        got.push(frame.id);
    }
    assert_eq!(got, missed);
}

#[actix_web::test]
async fn each_caller_holds_a_few_streams_and_others_still_get_theirs() {
    let issuer = TestIssuer::start();
    let nats = NatsServer::start().await;
    let _broker = producer_streams(&nats).await;
    let stack = stack_with_tokens(&issuer, &nats, false, |c| {
        c.order.server.rate_limits.trusted_proxies =
            vec!["127.0.0.1/32".parse().expect("a network")];
    })
    .await;
    let per_caller = nats.events_config().streams_per_caller;
    assert_eq!(per_caller, 4, "the default");
    let c1 = issuer.token("c1", &[]);
    let mut held = Vec::new();
    for _ in 0..per_caller {
        held.push(Listener::open(&stack, Some(&c1)).await);
    }
    let refused = request_stream(&stack, Some(&c1), &[]).await;
    assert_eq!(refused.status().as_u16(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let mut refused = refused;
    let body: serde_json::Value =
        serde_json::from_slice(&refused.body().await.expect("a body")).expect("json");
    assert_eq!(body["code"], "too_many_streams", "{body}");
    // Another subject, and an anonymous caller (by address), still get one.
    held.push(Listener::open(&stack, Some(&issuer.token("c2", &[]))).await);
    // Behind a trusted proxy, the address is the forwarded one.
    let from = |ip: &'static str| [("X-Forwarded-For", ip)];
    for _ in 0..per_caller {
        held.push(Listener::open_with(&stack, None, &from("203.0.113.7")).await);
    }
    let refused = request_stream(&stack, None, &from("203.0.113.7")).await;
    assert_eq!(refused.status().as_u16(), 429);
    held.push(Listener::open_with(&stack, None, &from("203.0.113.8")).await);
}

/// A stack whose catalogue writes need staff tokens of `issuer` (so events
/// name the staff member), all with events on against `nats`; order reserves
/// with its service token.
async fn stack_with_staff(issuer: &TestIssuer, nats: &NatsServer) -> Stack {
    let (events, auth) = (nats.events_config(), issuer.auth_config(false));
    stack_with_tokens(issuer, nats, false, move |c| {
        c.inventory.events = events.clone();
        c.pricing.events = events;
        c.inventory.server.auth = auth.clone();
        c.pricing.server.auth = auth;
        c.inventory.service_token = Some("s3cret".into());
        c.order.service_token = Some("s3cret".into());
    })
    .await
}

/// Every frame's `data:` as text.
fn texts(frames: &[Frame]) -> String {
    frames
        .iter()
        .map(|f| f.data.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn of_type<'a>(frames: &'a [Frame], event: &str, sku: &str) -> Option<&'a Frame> {
    frames
        .iter()
        .find(|f| f.event == event && f.data["data"]["sku"] == sku)
}

#[actix_web::test]
async fn an_anonymous_listener_sees_no_staff_member_order_or_reservation() {
    let issuer = TestIssuer::start();
    let nats = NatsServer::start().await;
    let stack = stack_with_staff(&issuer, &nats).await;
    let staff = issuer.token("staff-7", &["inventory:write", "pricing:write"]);
    let inventory = stack.inventory_client.with_bearer(&staff);
    let pricing = stack
        .pricing
        .as_ref()
        .expect("pricing runs")
        .client
        .with_bearer(&staff);
    let restock = |sku: &'static str| {
        let inventory = inventory.clone();
        async move {
            let body = json!({"delta": 5, "reason": "delivery"});
            let res = inventory
                .post_json(&format!("/items/{sku}/stock"), &body)
                .await;
            res.assert_status(200);
        }
    };
    let set_price = |sku: &'static str, base_price: f64| {
        let pricing = pricing.clone();
        async move {
            let body = json!({"base_price": base_price, "discount_percent": 0});
            let res = pricing.put_json(&format!("/price/{sku}"), &body).await;
            res.assert_status(200);
        }
    };
    let c1 = issuer.token("c1", &[]);
    let c3 = stack.order.client.with_bearer(&issuer.token("c3", &[]));
    let order = json!({"items": [{"sku": "A001", "quantity": 1}]});
    let admin_token = issuer.token("ops", &["orders:admin"]);
    let mut anonymous = Listener::open(&stack, None).await;
    let mut own = Listener::open(&stack, Some(&c1)).await;
    let mut admin = Listener::open(&stack, Some(&admin_token)).await;
    // The feed follows each stream from when it attaches: order, restock
    // and reprice until the admin has seen an event of each.
    let mut warm_up: Vec<Frame> = Vec::new();
    for round in 0.. {
        assert!(round < 30, "the feed never went live: {warm_up:?}");
        c3.post_json("/orders", &order).await.assert_status(201);
        restock("A005").await;
        set_price("A005", 10.0 + f64::from(round)).await;
        while let Some(frame) = admin.next_frame(Duration::from_millis(500)).await {
            warm_up.push(frame);
        }
        let seen = |prefix: &str| warm_up.iter().any(|f| f.event.starts_with(prefix));
        if seen("shop.order.") && seen("shop.inventory.") && seen("shop.pricing.") {
            break;
        }
    }

    let placed = stack
        .order
        .client
        .with_bearer(&c1)
        .post_json("/orders", &order)
        .await;
    placed.assert_status(201);
    let order_id = placed.body["order_id"].as_str().expect("id").to_owned();
    restock("A004").await;
    set_price("A004", 19.99).await;
    let expired = reservation_expired(&order::domain::OrderId::parse(&order_id).expect("an id"));
    publish(&nats, &expired, &expired.id).await;
    // Once the admin has seen all of it, a last restock marks the end for
    // everyone (every listener is offered the same frames in order).
    let mut seen_by_admin: Vec<Frame> = Vec::new();
    let all_seen = |frames: &[Frame]| {
        frames.iter().any(|f| f.id == expired.id)
            && frames.iter().any(|f| {
                f.event.starts_with("shop.order.") && f.data["subject"] == order_id.as_str()
            })
            && of_type(frames, "shop.inventory.stock_changed", "A004").is_some()
            && of_type(frames, "shop.pricing.price_changed", "A004").is_some()
    };
    while !all_seen(&seen_by_admin) {
        let frame = admin.next_frame(Duration::from_secs(15)).await;
        seen_by_admin
            .push(frame.unwrap_or_else(|| panic!("the admin missed some: {seen_by_admin:?}")));
    }
    restock("A003").await;
    seen_by_admin.extend(admin.until("A003").await);
    assert!(texts(&seen_by_admin).contains("staff-7"), "admins see who");

    let frames = anonymous.until("A003").await;
    let seen = texts(&frames);
    for secret in [
        "staff-7",
        order_id.as_str(),
        "customer_id",
        "reservation_id",
    ] {
        assert!(!seen.contains(secret), "{secret} shown: {seen}");
    }
    let stock = of_type(&frames, "shop.inventory.stock_changed", "A004").expect("the restock");
    assert!(stock.data["data"]["stock"].is_i64(), "{:?}", stock.data);
    let price = of_type(&frames, "shop.pricing.price_changed", "A004").expect("the price");
    assert_eq!(
        price.data["data"]["price"],
        json!(19.99),
        "{:?}",
        price.data
    );
    let expiry = frames
        .iter()
        .find(|f| f.id == expired.id)
        .expect("the expiry, without its reservation");
    assert!(expiry.data.get("subject").is_none(), "{:?}", expiry.data);

    // A customer sees its own order, and still no staff member.
    let frames = own.until("A003").await;
    let seen = texts(&frames);
    assert!(seen.contains(&order_id), "{seen}");
    assert!(!seen.contains("staff-7"), "{seen}");
}
