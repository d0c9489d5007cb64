//! Deadlines: an order's budget travels with its calls, and work nobody waits
//! for is not done.

use std::time::Duration;

use shared_testkit::slow;

use crate::helpers::{metric, spawn_stack_with};
use crate::proxy::{Fault, header};

#[actix_web::test]
async fn a_deadline_shorter_than_inventorys_delay_is_504_and_takes_no_stock() {
    // Inventory is told 1500 - 1000 = 500 ms are left; it is held 700 ms
    // before it could start, so it answers 504 without reserving, well
    // before the order's own 1500 ms run out.
    let stack = spawn_stack_with(|c| {
        c.inventory.server.chaos = slow(Duration::from_millis(700));
        c.order.request_timeout = Duration::from_secs(5);
        c.order.calls.order_deadline = Duration::from_millis(1500);
        c.order.calls.deadline_margin = Duration::from_millis(1000);
    })
    .await;
    let res = stack.place("c1", &[("A001", 5)]).await;
    res.assert_problem(504, "deadline_exceeded");

    let late = r#"http_requests_total{method="POST",route="/reservations",status="504"}"#;
    assert_eq!(metric(&stack.inventory_client, late).await, 1.0);
    assert_eq!(stack.stock("A001").await, 50, "no stock was taken");
    let history = stack.order.client.get("/orders?customer_id=c1").await;
    assert_eq!(history.body["orders"][0]["status"], "failed");
    let id = history.body["orders"][0]["order_id"].as_str().expect("id");
    stack
        .inventory_client
        .get(&format!("/reservations/{id}"))
        .await
        .assert_problem(404, "reservation_not_found");
    let stage = r#"deadline_exceeded_total{stage="reserve"}"#;
    assert_eq!(stack.order_metric(stage).await, 1.0);
}

#[actix_web::test]
async fn an_order_whose_request_timeout_has_passed_is_not_started() {
    let stack = spawn_stack_with(|_| {}).await;
    let res = stack.place_within("0", &[("A001", 5)]).await;
    res.assert_problem(504, "deadline_exceeded");
    let history = stack.order.client.get("/orders?customer_id=c1").await;
    assert_eq!(history.body["count"], 0, "no order was recorded");
    assert_eq!(stack.stock("A001").await, 50);
}

#[actix_web::test]
async fn the_deadline_travels_downstream_smaller_than_it_came() {
    let stack = spawn_stack_with(|c| c.inventory_proxy = Some((vec![], Fault::Pass))).await;
    let proxy = stack.proxy.as_ref().expect("proxy");

    stack
        .place_within("3000", &[("A001", 1)])
        .await
        .assert_status(201);
    // Without the header, the order's own budget (5000 ms) is what travels.
    stack.place("c1", &[("A001", 1)]).await.assert_status(201);

    let sent: Vec<u64> = proxy
        .heads()
        .iter()
        .filter(|head| head.starts_with("POST /reservations "))
        .map(|head| {
            header(head, "x-request-timeout-ms")
                .expect("the deadline is sent")
                .parse()
                .expect("whole milliseconds")
        })
        .collect();
    assert!(!sent.is_empty());
    let first = sent[0];
    assert!(
        0 < first && first <= 3000 - 20,
        "sent {first} ms of the caller's 3000 less the 20 ms margin"
    );
    if let Some(second) = sent.get(1) {
        assert!(3000 < *second && *second <= 5000 - 20, "sent {second}");
    }
}

#[actix_web::test]
async fn a_slow_pricing_leaves_the_confirm_its_time_and_the_order_is_taken_without_it() {
    // Pricing answers after 1500 ms; the order has 1200 ms and keeps 600 ms
    // (half its budget, as the request timeout is longer) for the confirm:
    // the quote is given up after 600 ms and the order is taken as pricing
    // being down would have it (never priced here: pending_pricing) instead
    // of running out of time.
    let stack = spawn_stack_with(|c| {
        c.pricing.server.chaos = slow(Duration::from_millis(1500));
        c.order.request_timeout = Duration::from_secs(5);
        c.order.calls.order_deadline = Duration::from_millis(1200);
    })
    .await;
    let res = stack.place("c1", &[("A001", 1)]).await;
    res.assert_status(201);
    assert_eq!(res.body["status"], "pending_pricing");
    assert_eq!(stack.stock("A001").await, 49, "the stock is confirmed");
    let stage = r#"deadline_exceeded_total{stage="pricing"}"#;
    assert_eq!(stack.order_metric(stage).await, 0.0);
}
