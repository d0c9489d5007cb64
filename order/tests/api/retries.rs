//! Retries: a call that fails on the way is tried again, within a budget.

use crate::helpers::spawn_stack_with;
use crate::proxy::Fault;

#[actix_web::test]
async fn a_reserve_cut_off_once_is_retried_and_holds_stock_once() {
    // The first reserve reaches inventory, which takes the stock, but its
    // answer never comes back; the retry carries the same reservation id.
    let stack = spawn_stack_with(|c| {
        c.inventory_proxy = Some((vec![Fault::CutAfterForward], Fault::Pass));
    })
    .await;
    let proxy = stack.proxy.as_ref().expect("proxy");

    let res = stack.place("c1", &[("A001", 3)]).await;
    res.assert_status(201);
    assert_eq!(res.body["status"], "confirmed");
    assert_eq!(
        proxy.count("POST /reservations "),
        2,
        "{:?}",
        proxy.request_lines()
    );
    assert_eq!(stack.stock("A001").await, 47, "the stock moved once");

    let retried = r#"dependency_retries_total{dependency="inventory",outcome="success"}"#;
    assert_eq!(stack.order_metric(retried).await, 1.0);
    // One call, one outcome for the breaker: the failed first attempt is not counted.
    let breaker = &stack.dependency("inventory").await["breaker"];
    assert_eq!(breaker["consecutive_failures"], 0);
    assert_eq!(breaker["state"], "closed");
}

#[actix_web::test]
async fn with_the_retry_budget_spent_no_retry_is_made() {
    let stack = spawn_stack_with(|c| {
        c.order.calls.retry.budget_percent = 0;
        c.order.calls.retry.budget_min_per_sec = 0;
        c.inventory_proxy = Some((vec![], Fault::Cut));
    })
    .await;
    let proxy = stack.proxy.as_ref().expect("proxy");

    let res = stack.place("c1", &[("A001", 3)]).await;
    res.assert_problem(503, "inventory_unavailable");
    assert_eq!(
        proxy.count("POST /reservations "),
        1,
        "{:?}",
        proxy.request_lines()
    );
    assert_eq!(
        proxy.count("DELETE /reservations/"),
        1,
        "the release was not retried either"
    );
    let spent = r#"retry_budget_exhausted_total{dependency="inventory"}"#;
    assert_eq!(stack.order_metric(spent).await, 2.0);
    assert_eq!(stack.stock("A001").await, 50);
}

#[actix_web::test]
async fn with_retries_on_a_failing_call_is_tried_up_to_the_attempt_limit() {
    let stack = spawn_stack_with(|c| c.inventory_proxy = Some((vec![], Fault::Cut))).await;
    let proxy = stack.proxy.as_ref().expect("proxy");

    let res = stack.place("c1", &[("A001", 3)]).await;
    res.assert_problem(503, "inventory_unavailable");
    assert_eq!(
        proxy.count("POST /reservations "),
        3,
        "RETRY_MAX_ATTEMPTS = 3"
    );
    let failed = r#"dependency_retries_total{dependency="inventory",outcome="failure"}"#;
    assert!(stack.order_metric(failed).await >= 2.0);
    // Three failed attempts at the reserve are one failure for the breaker
    // (and the release's three are one more).
    let breaker = &stack.dependency("inventory").await["breaker"];
    assert_eq!(breaker["consecutive_failures"], 2);
}
