//! Bulkheads: past a limit, work is refused at once with 503, not queued.

use std::time::Duration;

use crate::helpers::{Stack, metric, order_body, spawn_stack_with};
use crate::proxy::Fault;

/// Starts an order in the background; its answer's status when awaited.
fn place_in_background(stack: &Stack, sku: &'static str) -> actix_web::rt::task::JoinHandle<u16> {
    let client = stack.order.client.clone();
    actix_web::rt::spawn(async move {
        let res = client
            .post_json("/orders", &order_body("c1", &[(sku, 1)]))
            .await;
        res.status.as_u16()
    })
}

fn held_at_inventory(c: &mut crate::helpers::StackConfig) {
    c.inventory_proxy = Some((vec![], Fault::Pass));
    // Held orders must not time out while the test looks at the third one.
    c.order.request_timeout = Duration::from_secs(30);
    c.order.calls.order_deadline = Duration::from_secs(30);
}

#[actix_web::test]
async fn past_the_orders_limit_an_order_is_refused_at_once_and_the_limit_recovers() {
    let stack = spawn_stack_with(|c| {
        held_at_inventory(c);
        c.order.calls.orders_max_in_flight = 2;
    })
    .await;
    let proxy = stack.proxy.as_ref().expect("proxy");
    proxy.close();
    let slow = [
        place_in_background(&stack, "A001"),
        place_in_background(&stack, "A002"),
    ];
    proxy.arrived(2).await;

    // Both held at inventory: the third is answered while they still wait.
    let third = stack.place("c1", &[("C001", 1)]).await;
    third.assert_problem(503, "too_many_orders");
    assert_eq!(third.header("retry-after").as_deref(), Some("1"));
    assert!(
        slow.iter().all(|task| !task.is_finished()),
        "the held orders were still waiting"
    );

    proxy.open();
    for task in slow {
        assert_eq!(task.await.expect("order task"), 201);
    }
    stack.place("c1", &[("C001", 1)]).await.assert_status(201);
    let refused = r#"bulkhead_rejected_total{bulkhead="orders"}"#;
    assert_eq!(stack.order_metric(refused).await, 1.0);
    assert_eq!(
        stack.stock("C001").await,
        499,
        "the refused order held nothing"
    );
}

#[actix_web::test]
async fn past_the_inventory_limit_an_order_is_refused_at_once_with_dependency_busy() {
    let stack = spawn_stack_with(|c| {
        held_at_inventory(c);
        c.order.calls.inventory_max_in_flight = 1;
    })
    .await;
    let proxy = stack.proxy.as_ref().expect("proxy");
    proxy.close();
    let slow = place_in_background(&stack, "A001");
    proxy.arrived(1).await;

    let second = stack.place("c1", &[("C001", 1)]).await;
    second.assert_problem(503, "dependency_busy");
    assert!(second.header("retry-after").is_some());
    assert!(!slow.is_finished());

    proxy.open();
    assert_eq!(slow.await.expect("order task"), 201);
    stack.place("c1", &[("C001", 1)]).await.assert_status(201);
    let refused = r#"bulkhead_rejected_total{bulkhead="inventory"}"#;
    assert_eq!(stack.order_metric(refused).await, 1.0);
    let reserved = r#"http_requests_total{method="POST",route="/reservations",status="201"}"#;
    assert_eq!(
        metric(&stack.inventory_client, reserved).await,
        2.0,
        "the refused call never reached inventory"
    );
}
