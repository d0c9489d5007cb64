use actix_web::http::Method;
use futures::future::join_all;
use serde_json::json;

use crate::helpers::{order_body, spawn_stack, spawn_stack_with};

#[actix_web::test]
async fn the_seed_order_is_confirmed_with_live_prices() {
    let stack = spawn_stack().await;
    let res = stack
        .order
        .client
        .post_json(
            "/orders",
            &json!({"customer_id": "test", "skus": ["A001", "B001"]}),
        )
        .await;
    res.assert_status(201);
    let order = &res.body;
    let id = order["order_id"].as_str().expect("order id");
    assert_eq!(res.header("location"), Some(format!("/orders/{id}")));
    assert_eq!(order["customer_id"], "test");
    assert_eq!(order["status"], "confirmed");
    assert_eq!(order["pricing"], "live");
    assert_eq!(order["currency"], "USD");
    assert_eq!(order["total"], 1098.99);
    assert_eq!(
        order["items"],
        json!([
            {"sku": "A001", "name": "Laptop", "quantity": 1, "unit_price": 899.99,
             "discount_percent": 10, "line_total": 899.99},
            {"sku": "B001", "name": "Desk Chair", "quantity": 1, "unit_price": 199.0,
             "discount_percent": 0, "line_total": 199.0}
        ])
    );
    assert!(order["created_at"].is_string());

    assert_eq!(stack.stock("A001").await, 49);
    assert_eq!(stack.stock("B001").await, 19);
    let reservation = stack
        .inventory_client
        .get(&format!("/reservations/{id}"))
        .await;
    assert_eq!(
        reservation.body["status"], "confirmed",
        "stock is confirmed, not just held"
    );
}

#[actix_web::test]
async fn quantities_get_quantity_tier_prices() {
    let stack = spawn_stack().await;
    let res = stack.place("c1", &[("A002", 10), ("C001", 3)]).await;
    res.assert_status(201);
    assert_eq!(res.body["items"][0]["unit_price"], 24.23);
    assert_eq!(res.body["items"][0]["line_total"], 242.3);
    assert_eq!(res.body["items"][1]["line_total"], 44.88);
    assert_eq!(res.body["total"], 287.18);
    assert_eq!(stack.stock("A002").await, 190);
}

#[actix_web::test]
async fn orders_can_be_read_back_and_listed_by_customer() {
    let stack = spawn_stack().await;
    let first = stack.place("alice", &[("A002", 1)]).await;
    let second = stack.place("alice", &[("C001", 2)]).await;
    stack.place("bob", &[("C002", 1)]).await.assert_status(201);

    let id = first.body["order_id"].as_str().expect("id");
    let res = stack.order.client.get(&format!("/orders/{id}")).await;
    res.assert_status(200);
    assert_eq!(res.body, first.body);

    let res = stack.order.client.get("/orders?customer_id=alice").await;
    res.assert_status(200);
    assert_eq!(res.body["count"], 2);
    assert_eq!(
        res.body["orders"][0]["order_id"], second.body["order_id"],
        "newest first"
    );
    assert_eq!(res.body["orders"][1]["order_id"], first.body["order_id"]);

    stack
        .order
        .client
        .get("/orders/nope")
        .await
        .assert_problem(404, "order_not_found");
    stack
        .order
        .client
        .get("/orders")
        .await
        .assert_problem(400, "invalid_request");
}

#[actix_web::test]
async fn cancelling_releases_the_stock_once() {
    let stack = spawn_stack().await;
    let res = stack.place("c1", &[("B001", 3)]).await;
    let id = res.body["order_id"].as_str().expect("id").to_owned();
    assert_eq!(stack.stock("B001").await, 17);

    let cancel = format!("/orders/{id}/cancel");
    let res = stack.order.client.post_json(&cancel, &json!({})).await;
    res.assert_status(200);
    assert_eq!(res.body["status"], "cancelled");
    assert_eq!(stack.stock("B001").await, 20);

    stack
        .order
        .client
        .post_json(&cancel, &json!({}))
        .await
        .assert_status(200);
    assert_eq!(
        stack.stock("B001").await,
        20,
        "a second cancel releases nothing more"
    );
    stack
        .order
        .client
        .post_json("/orders/nope/cancel", &json!({}))
        .await
        .assert_problem(404, "order_not_found");
}

#[actix_web::test]
async fn insufficient_stock_is_409_and_holds_nothing() {
    let stack = spawn_stack().await;
    let res = stack.place("c1", &[("A001", 1), ("B002", 1)]).await;
    res.assert_problem(409, "insufficient_stock");
    assert_eq!(res.body["skus"], json!(["B002"]));
    assert_eq!(stack.stock("A001").await, 50);
    let history = stack.order.client.get("/orders?customer_id=c1").await;
    assert_eq!(history.body["orders"][0]["status"], "rejected");
    let id = history.body["orders"][0]["order_id"].as_str().expect("id");
    stack
        .order
        .client
        .post_json(&format!("/orders/{id}/cancel"), &json!({}))
        .await
        .assert_problem(409, "order_not_cancellable");
}

#[actix_web::test]
async fn unknown_sku_is_422() {
    let stack = spawn_stack().await;
    let res = stack.place("c1", &[("A001", 1), ("Z999", 1)]).await;
    res.assert_problem(422, "unknown_sku");
    assert_eq!(res.body["skus"], json!(["Z999"]));
    assert_eq!(stack.stock("A001").await, 50);
}

#[actix_web::test]
async fn invalid_orders_are_400_and_change_nothing() {
    let stack = spawn_stack().await;
    let cases = [
        json!({"customer_id": "c1"}),
        json!({"customer_id": "", "skus": ["A001"]}),
        json!({"customer_id": "c1", "skus": []}),
        json!({"customer_id": "c1", "skus": ["A001"], "items": [{"sku": "A001", "quantity": 1}]}),
        json!({"customer_id": "c1", "items": [{"sku": "A001", "quantity": 0}]}),
        json!({"customer_id": "c1", "items": [{"sku": "A001", "quantity": 10001}]}),
        json!({"customer_id": "c1", "items": [{"sku": "A001", "quantity": 1.5}]}),
        json!({"customer_id": "c1", "skus": ["bad sku"]}),
        json!({"customer_id": 7, "skus": ["A001"]}),
        json!({"skus": ["A001"]}),
        json!([]),
    ];
    for body in cases {
        let res = stack.order.client.post_json("/orders", &body).await;
        assert_eq!(res.status, 400, "{body}: {}", res.text);
        assert_eq!(res.body["code"], "invalid_request", "{body}: {}", res.text);
    }
    assert_eq!(stack.stock("A001").await, 50);
}

#[actix_web::test]
async fn malformed_oversized_and_mistyped_bodies_are_problems() {
    let stack = spawn_stack().await;
    let client = &stack.order.client;
    client
        .post_raw(
            "/orders",
            "application/json",
            b"{\"customer_id\": ".to_vec(),
        )
        .await
        .assert_problem(400, "malformed_json");
    let order = order_body("c1", &[("A001", 1)]).to_string();
    client
        .post_raw("/orders", "text/plain", order)
        .await
        .assert_problem(415, "unsupported_media_type");
    let huge = format!("{{\"customer_id\": \"{}\"}}", "x".repeat(200 * 1024));
    client
        .post_raw("/orders", "application/json", huge)
        .await
        .assert_problem(413, "payload_too_large");
    client
        .send(Method::PUT, "/orders", &[], None)
        .await
        .assert_problem(405, "method_not_allowed");
    client
        .send(
            Method::POST,
            "/orders",
            &[
                ("content-type", "application/json"),
                ("idempotency-key", "has space"),
            ],
            Some(order_body("c1", &[("A001", 1)]).to_string().into_bytes()),
        )
        .await
        .assert_problem(400, "invalid_request");
    assert_eq!(stack.stock("A001").await, 50);
}

#[actix_web::test]
async fn a_repeated_idempotency_key_returns_the_first_order() {
    let stack = spawn_stack().await;
    let body = order_body("c1", &[("A001", 2)]);
    let first = stack.place_with_key("key-1", &body).await;
    first.assert_status(201);
    let again = stack.place_with_key("key-1", &body).await;
    again.assert_status(200);
    assert_eq!(again.body["order_id"], first.body["order_id"]);
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(stack.stock("A001").await, 48, "reserved once");

    let other = stack
        .place_with_key("key-1", &order_body("c1", &[("A001", 3)]))
        .await;
    other.assert_problem(422, "idempotency_key_reused");
    assert_eq!(stack.stock("A001").await, 48);
}

#[actix_web::test]
async fn concurrent_repeats_of_one_idempotency_key_make_one_order() {
    let stack = spawn_stack().await;
    let body = order_body("c1", &[("A001", 1)]);
    let attempts = (0..20).map(|_| stack.place_with_key("same-key", &body));
    let results = join_all(attempts).await;
    for res in &results {
        assert!(
            [200, 201, 409].contains(&res.status.as_u16()),
            "{}: {}",
            res.status,
            res.text
        );
    }
    assert_eq!(results.iter().filter(|r| r.status == 201).count(), 1);
    assert_eq!(stack.stock("A001").await, 49);
    let history = stack.order.client.get("/orders?customer_id=c1").await;
    assert_eq!(history.body["count"], 1);
}

#[actix_web::test]
async fn the_service_token_is_sent_to_inventory() {
    let stack = spawn_stack_with(|c| {
        c.inventory.service_token = Some("s3cret".into());
        c.order.service_token = Some("s3cret".into());
    })
    .await;
    stack.place("c1", &[("A001", 1)]).await.assert_status(201);
    stack
        .inventory_client
        .post_json(
            "/reservations",
            &json!({"reservation_id": "x", "lines": [{"sku": "A001", "quantity": 1}]}),
        )
        .await
        .assert_problem(401, "unauthorized");

    let wrong = spawn_stack_with(|c| {
        c.inventory.service_token = Some("s3cret".into());
        c.order.service_token = Some("guess".into());
    })
    .await;
    wrong
        .place("c1", &[("A001", 1)])
        .await
        .assert_problem(502, "inventory_refused");
    assert_eq!(wrong.stock("A001").await, 50);
}

#[actix_web::test]
async fn two_hundred_concurrent_orders_for_fifty_units_confirm_exactly_fifty() {
    // Room for all 200 at once: this is about stock, not load shedding
    // (past INVENTORY_MAX_IN_FLIGHT, 64 by default, orders get 503 dependency_busy).
    let stack = spawn_stack_with(|c| c.order.calls.inventory_max_in_flight = 200).await;
    let attempts = (0..200).map(|i| {
        let stack = &stack;
        async move { stack.place(&format!("c{i}"), &[("A001", 1)]).await }
    });
    let results = join_all(attempts).await;
    let confirmed = results.iter().filter(|r| r.status == 201).count();
    let refused = results
        .iter()
        .filter(|r| r.status == 409 && r.body["code"] == "insufficient_stock")
        .count();
    assert_eq!((confirmed, refused), (50, 150));
    assert_eq!(stack.stock("A001").await, 0);
    for res in results.iter().filter(|r| r.status == 201) {
        assert_eq!(res.body["status"], "confirmed");
    }
}

/// Orders that reach the confirm step together share one call to inventory,
/// and each is still answered for its own reservation.
#[actix_web::test]
async fn orders_reaching_the_confirm_together_share_one_call_to_inventory() {
    // Every inventory call takes 40 ms, so confirms queue behind those in flight.
    let slow = shared_testkit::slow(std::time::Duration::from_millis(40));
    let stack = spawn_stack_with(|c| c.inventory.server.chaos = slow).await;
    let calls_before = stack.order_metric("order_confirm_batch_size_count").await;
    let orders_before = stack.order_metric("order_confirm_batch_size_sum").await;
    let attempts = (0..24).map(|i| {
        let stack = &stack;
        async move { stack.place(&format!("c{i}"), &[("A001", 1)]).await }
    });
    let results = join_all(attempts).await;
    for res in &results {
        res.assert_status(201);
        let id = res.body["order_id"].as_str().expect("an order id");
        let reservation = stack
            .inventory_client
            .get(&format!("/reservations/{id}"))
            .await;
        assert_eq!(reservation.body["status"], "confirmed", "{id}");
    }
    assert_eq!(stack.stock("A001").await, 50 - 24);
    let calls = stack.order_metric("order_confirm_batch_size_count").await - calls_before;
    let orders = stack.order_metric("order_confirm_batch_size_sum").await - orders_before;
    assert_eq!(orders, 24.0, "every order confirmed through a call, once");
    // Two workers with two calls in flight each: at most four went alone.
    assert!(calls <= 12.0, "{calls} confirmation calls for 24 orders");

    // Each order that rode on another's call names that call's request id.
    let ours: Vec<&str> = results
        .iter()
        .filter_map(|r| r.body["order_id"].as_str())
        .collect();
    let placed: Vec<serde_json::Value> = shared_testkit::captured_logs()
        .into_iter()
        .filter(|l| l["message"] == "order placed")
        .filter(|l| ours.iter().any(|id| l["span"]["order_id"] == *id))
        .collect();
    assert_eq!(placed.len(), 24);
    let riders = placed
        .iter()
        .filter(|l| l["span"]["confirmed_with"].is_string())
        .count();
    assert_eq!(riders as f64, orders - calls, "{placed:?}");
}

#[actix_web::test]
async fn the_request_id_is_echoed_by_the_order_service() {
    let stack = spawn_stack().await;
    let res = stack
        .order
        .client
        .send(
            Method::POST,
            "/orders",
            &[
                ("content-type", "application/json"),
                ("x-request-id", "order-req-1"),
            ],
            Some(order_body("c1", &[("A001", 1)]).to_string().into_bytes()),
        )
        .await;
    res.assert_status(201);
    assert_eq!(res.header("x-request-id").as_deref(), Some("order-req-1"));
}
