//! Several replicas of inventory and order on one database behave as one
//! service. (On the SQLite pass they share one database file; on the
//! PostgreSQL pass, one database.)

use std::time::Duration;

use futures::future::join_all;
use shared_testkit::eventually;

use crate::helpers::{order_body, spawn_stack, spawn_stack_with};

#[actix_web::test]
async fn three_hundred_orders_over_two_replicas_each_confirm_exactly_the_stock() {
    // Room for all 150 per replica at once: this is about stock, not load shedding.
    let stack = spawn_stack_with(|c| c.order.calls.inventory_max_in_flight = 300).await;
    let inventory_b = stack.inventory_replica().await;
    let order_b = stack
        .order_replica(format!("http://127.0.0.1:{}", inventory_b.port))
        .await;
    let replicas = [stack.order.client.clone(), order_b.client.clone()];

    // B001 has 20 in stock.
    let attempts = (0..300).map(|i| {
        let client = replicas[i % 2].clone();
        async move {
            client
                .post_json("/orders", &order_body(&format!("c{i}"), &[("B001", 1)]))
                .await
        }
    });
    let results = join_all(attempts).await;
    let confirmed = results.iter().filter(|r| r.status == 201).count();
    let refused = results.iter().filter(|r| r.status == 409).count();
    assert_eq!((confirmed, refused), (20, 280));
    let per_replica: Vec<usize> = (0..2)
        .map(|r| {
            results
                .iter()
                .skip(r)
                .step_by(2)
                .filter(|x| x.status == 201)
                .count()
        })
        .collect();
    assert_eq!(per_replica.iter().sum::<usize>(), 20, "{per_replica:?}");
    assert_eq!(stack.stock("B001").await, 0);
    let via_b = inventory_b.client.get("/items/B001").await;
    assert_eq!(via_b.body["stock"], 0);
}

#[actix_web::test]
async fn an_idempotency_key_makes_one_order_whichever_replica_gets_the_repeat() {
    let stack = spawn_stack().await;
    let order_b = stack
        .order_replica(format!(
            "http://127.0.0.1:{}",
            stack.inventory.as_ref().expect("up").port
        ))
        .await;
    let body = order_body("c1", &[("A001", 1)]);
    let first_wave = (0..20).map(|i| {
        let client = if i % 2 == 0 {
            stack.order.client.clone()
        } else {
            order_b.client.clone()
        };
        let body = body.clone();
        async move {
            client
                .send(
                    actix_web::http::Method::POST,
                    "/orders",
                    &[
                        ("content-type", "application/json"),
                        ("idempotency-key", "one-key"),
                    ],
                    Some(body.to_string().into_bytes()),
                )
                .await
        }
    });
    let results = join_all(first_wave).await;
    assert_eq!(results.iter().filter(|r| r.status == 201).count(), 1);
    assert!(
        results
            .iter()
            .all(|r| [200, 201, 409].contains(&r.status.as_u16()))
    );
    let order_id = results
        .iter()
        .find(|r| r.status == 201)
        .expect("one created")
        .body["order_id"]
        .clone();

    for client in [&stack.order.client, &order_b.client] {
        let res = client
            .send(
                actix_web::http::Method::POST,
                "/orders",
                &[
                    ("content-type", "application/json"),
                    ("idempotency-key", "one-key"),
                ],
                Some(body.to_string().into_bytes()),
            )
            .await;
        res.assert_status(200);
        assert_eq!(res.body["order_id"], order_id);
    }
    assert_eq!(stack.stock("A001").await, 49);
    assert_eq!(
        stack.order.client.get("/orders?customer_id=c1").await.body["count"],
        1
    );
}

#[actix_web::test]
async fn reservations_expire_whichever_inventory_replica_is_left_running() {
    let mut stack =
        spawn_stack_with(|c| c.inventory.reservation_ttl = Duration::from_millis(200)).await;
    let inventory_b = stack.inventory_replica().await;
    stack
        .inventory_client
        .post_json(
            "/reservations",
            &serde_json::json!({"reservation_id": "r1", "lines": [{"sku": "A001", "quantity": 4}]}),
        )
        .await
        .assert_status(201);
    stack.stop_inventory().await; // the replica that took the reservation is gone

    eventually("the stock back at 50", Duration::from_secs(5), async || {
        inventory_b.client.get("/items/A001").await.body["stock"].as_i64() == Some(50)
    })
    .await;
    let reservation = inventory_b.client.get("/reservations/r1").await;
    assert_eq!(reservation.body["status"], "expired");
}
