//! Failure paths: dependencies stopped, slow, and back again.

use std::time::{Duration, Instant};

use shared_testkit::{eventually, slow};

use crate::helpers::{spawn_stack, spawn_stack_with};

#[actix_web::test]
async fn with_pricing_down_orders_are_priced_from_the_last_prices_seen() {
    let mut stack = spawn_stack().await;
    let live = stack.place("c1", &[("A001", 1)]).await;
    live.assert_status(201);
    assert_eq!(live.body["pricing"], "live");

    stack.stop_pricing().await;
    let res = stack.place("c1", &[("A001", 2)]).await;
    res.assert_status(201);
    assert_eq!(res.body["status"], "confirmed");
    assert_eq!(res.body["pricing"], "fallback");
    assert_eq!(res.body["items"][0]["unit_price"], 899.99);
    assert_eq!(res.body["total"], 1799.98);
    assert_eq!(stack.stock("A001").await, 47);
}

#[actix_web::test]
async fn a_sku_never_priced_before_waits_for_pricing_and_holds_its_stock() {
    let mut stack = spawn_stack().await;
    stack.stop_pricing().await;
    let res = stack.place("c1", &[("B001", 1)]).await;
    res.assert_status(201);
    assert_eq!(res.body["status"], "pending_pricing");
    assert_eq!(res.body["pricing"], "fallback");
    assert!(
        res.body["items"][0]["unit_price"].is_null(),
        "never a made-up price"
    );
    assert!(res.body["total"].is_null());
    let id = res.body["order_id"].as_str().expect("id");
    let reservation = stack
        .inventory_client
        .get(&format!("/reservations/{id}"))
        .await;
    assert_eq!(reservation.body["status"], "confirmed");
}

#[actix_web::test]
async fn the_pricing_breaker_opens_fails_fast_and_recovers_through_a_trial_call() {
    let mut stack = spawn_stack().await;
    stack.place("c1", &[("A002", 1)]).await.assert_status(201); // remembers A002's price
    stack.stop_pricing().await;

    // Three failures in a row (the threshold) open the breaker.
    for _ in 0..3 {
        let res = stack.place("c1", &[("A002", 1)]).await;
        assert_eq!(res.body["pricing"], "fallback");
    }
    let pricing = stack.dependency("pricing").await;
    assert_eq!(pricing["breaker"]["state"], "open");
    assert_eq!(pricing["breaker"]["consecutive_failures"], 3);
    assert!(pricing["breaker"]["next_trial_at_ms"].is_u64());
    assert_eq!(pricing["status"], "down");

    // Open: the call is refused without touching the network.
    let rejected_before = pricing["breaker"]["rejected_calls"]
        .as_u64()
        .expect("count");
    let res = stack.place("c1", &[("A002", 1)]).await;
    assert_eq!(res.body["pricing"], "fallback");
    let rejected_after = stack.dependency("pricing").await["breaker"]["rejected_calls"]
        .as_u64()
        .expect("count");
    assert_eq!(rejected_after, rejected_before + 1);

    // Pricing comes back, but the breaker waits out its reset timeout.
    stack.start_pricing().await;
    let res = stack.place("c1", &[("A002", 1)]).await;
    assert_eq!(
        res.body["pricing"], "fallback",
        "still open before the reset timeout"
    );

    // After it, one trial call goes through, succeeds and closes the breaker.
    stack.clock.advance(Duration::from_secs(30));
    let res = stack.place("c1", &[("A002", 1)]).await;
    res.assert_status(201);
    assert_eq!(res.body["pricing"], "live");
    assert_eq!(stack.breaker_state("pricing").await, "closed");
    assert_eq!(stack.dependency("pricing").await["status"], "up");
}

#[actix_web::test]
async fn a_failed_trial_call_opens_the_breaker_again() {
    let mut stack = spawn_stack_with(|c| c.order.breaker.failure_threshold = 1).await;
    stack.stop_pricing().await;
    stack.place("c1", &[("A002", 1)]).await.assert_status(201);
    assert_eq!(stack.breaker_state("pricing").await, "open");

    stack.clock.advance(Duration::from_secs(30));
    let res = stack.place("c1", &[("A002", 1)]).await;
    res.assert_status(201);
    let breaker = stack.dependency("pricing").await["breaker"].clone();
    assert_eq!(breaker["state"], "open", "the trial failed");
    assert_eq!(breaker["transitions"], 3, "closed->open->half_open->open");
}

#[actix_web::test]
async fn pricing_slower_than_the_timeout_falls_back_within_the_timeout() {
    let stack = spawn_stack_with(|c| {
        c.pricing.server.chaos = slow(Duration::from_millis(1500));
        c.order.request_timeout = Duration::from_millis(200);
    })
    .await;
    let started = Instant::now();
    let res = stack.place("c1", &[("A002", 1)]).await;
    let elapsed = started.elapsed();
    res.assert_status(201);
    assert_eq!(res.body["pricing"], "fallback");
    assert_eq!(res.body["status"], "pending_pricing");
    assert!(elapsed < Duration::from_millis(1200), "took {elapsed:?}");
}

#[actix_web::test]
async fn with_inventory_down_orders_are_refused_with_503_and_retry_after() {
    let mut stack = spawn_stack().await;
    stack.stop_inventory().await;
    let res = stack.place("c1", &[("A001", 1)]).await;
    res.assert_problem(503, "inventory_unavailable");
    assert!(res.header("retry-after").is_some());
    let history = stack.order.client.get("/orders?customer_id=c1").await;
    assert_eq!(history.body["orders"][0]["status"], "failed");

    // Nothing was confirmed or held: inventory comes back with all its stock.
    stack.start_inventory().await;
    assert_eq!(stack.stock("A001").await, 50);
    stack.place("c1", &[("A001", 1)]).await.assert_status(201);
}

#[actix_web::test]
async fn an_open_inventory_breaker_refuses_at_once_with_its_retry_after() {
    let mut stack = spawn_stack_with(|c| c.order.breaker.failure_threshold = 2).await;
    stack.stop_inventory().await;
    for _ in 0..2 {
        stack
            .place("c1", &[("A001", 1)])
            .await
            .assert_problem(503, "inventory_unavailable");
    }
    assert_eq!(stack.breaker_state("inventory").await, "open");
    let res = stack.place("c1", &[("A001", 1)]).await;
    res.assert_problem(503, "inventory_unavailable");
    assert_eq!(res.header("retry-after").as_deref(), Some("30"));

    stack.start_inventory().await;
    stack.clock.advance(Duration::from_secs(30));
    stack.place("c1", &[("A001", 1)]).await.assert_status(201);
    assert_eq!(stack.breaker_state("inventory").await, "closed");
}

#[actix_web::test]
async fn inventory_slower_than_the_timeout_leaves_no_stock_held() {
    let stack = spawn_stack_with(|c| {
        c.inventory.server.chaos = slow(Duration::from_millis(400));
        c.order.request_timeout = Duration::from_millis(150);
    })
    .await;
    let res = stack.place("c1", &[("A001", 5)]).await;
    res.assert_problem(503, "inventory_unavailable");
    // Whatever inventory did with the late request, the compensating release
    // (or, failing that, the reservation's expiry) gives the stock back.
    eventually("the stock back at 50", Duration::from_secs(5), async || {
        stack.stock("A001").await == 50
    })
    .await;
}

#[actix_web::test]
async fn health_shows_each_dependency_and_its_breaker() {
    let mut stack = spawn_stack().await;
    let res = stack.order.client.get("/health").await;
    res.assert_status(200);
    assert_eq!(res.body["service"], "order");
    assert_eq!(res.body["status"], "ok");
    for dep in ["inventory", "pricing"] {
        let check = &res.body["checks"][dep];
        assert_eq!(check["status"], "up", "{dep}");
        assert_eq!(check["required"], false);
        assert_eq!(check["breaker"]["state"], "closed");
        assert_eq!(check["breaker"]["failure_threshold"], 3);
    }
    assert_eq!(res.body["checks"]["database"]["status"], "up");

    // Readiness needs the store, not the dependencies the service degrades around.
    stack.stop_pricing().await;
    stack.stop_inventory().await;
    stack
        .order
        .client
        .get("/health/ready")
        .await
        .assert_status(200);
    let res = stack.order.client.get("/health").await;
    assert_eq!(res.body["status"], "degraded");
    assert_eq!(res.body["checks"]["inventory"]["status"], "down");
}
