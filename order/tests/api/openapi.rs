//! `GET /openapi.json` describes exactly what the order service serves, and
//! the contract's examples fit it.

use serde_json::json;
use shared_testkit::nats::NatsServer;
use shared_testkit::openapi::ApiDescription;

use crate::helpers::spawn_stack;
use crate::live::events_stack;

/// Every route the order service serves with events off: the contract's,
/// then the plumbing's.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/orders"),
    ("GET", "/orders"),
    ("GET", "/orders/{id}"),
    ("POST", "/orders/{id}/cancel"),
    ("GET", "/health"),
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

/// The routes that exist only with events on (`NATS_URL` set).
const EVENT_ROUTES: &[(&str, &str)] = &[
    ("GET", "/events/stream"),
    ("GET", "/admin/dead-letters"),
    ("POST", "/admin/dead-letters/{sequence}/replay"),
];

#[actix_web::test]
async fn openapi_describes_every_route_and_nothing_else() {
    let stack = spawn_stack().await;
    let api = ApiDescription::fetch(&stack.order.client).await;
    api.assert_operations(ROUTES);
    api.assert_undocumented_methods_are_405(&stack.order.client)
        .await;
}

#[actix_web::test]
async fn with_events_on_openapi_describes_the_event_routes_too() {
    let nats = NatsServer::start().await;
    let (stack, _broker) = events_stack(&nats).await;
    let api = ApiDescription::fetch(&stack.order.client).await;
    let all: Vec<_> = ROUTES.iter().chain(EVENT_ROUTES).copied().collect();
    api.assert_operations(&all);
    // The stream never ends, so it is not probed; the methods it does not
    // take are refused as documented.
    api.assert_undocumented_methods_are_405(&stack.order.client)
        .await;
    let stream = &api.doc["paths"]["/events/stream"]["get"]["responses"];
    assert!(
        stream["200"]["content"]["text/event-stream"].is_object(),
        "{stream}"
    );
    // No route answers that events are off: they are there or absent.
    assert!(!api.doc.to_string().contains("events_off"));
}

#[actix_web::test]
async fn every_documented_operation_answers_as_documented() {
    let stack = spawn_stack().await;
    let api = ApiDescription::fetch(&stack.order.client).await;
    assert_eq!(api.probe(&stack.order.client).await, ROUTES.len());
}

#[actix_web::test]
async fn orders_and_their_problems_answer_as_documented() {
    let stack = spawn_stack().await;
    let api = ApiDescription::fetch(&stack.order.client).await;
    let placed = stack.place("c1", &[("A001", 2)]).await;
    placed.assert_status(201);
    api.assert_valid("Order", &placed.body);
    let short = stack.place("c1", &[("B002", 1)]).await;
    short.assert_problem(409, "insufficient_stock");
    api.assert_valid("SkusProblem", &short.body);
    let unknown = stack.place("c1", &[("Z999", 1)]).await;
    unknown.assert_problem(422, "unknown_sku");
    api.assert_valid("SkusProblem", &unknown.body);
}

#[actix_web::test]
async fn contract_examples_fit_the_description() {
    let stack = spawn_stack().await;
    let api = ApiDescription::fetch(&stack.order.client).await;
    api.assert_valid(
        "CreateOrderRequest",
        &json!({"customer_id": "test", "skus": ["A001", "B001"]}),
    );
    api.assert_valid(
        "CreateOrderRequest",
        &json!({"customer_id": "c1", "items": [{"sku": "A001", "quantity": 2}]}),
    );
    api.assert_invalid(
        "CreateOrderRequest",
        &json!({"customer_id": "c1", "skus": ["A001"], "items": [{"sku": "A001", "quantity": 1}]}),
    );
    let order = json!({
        "order_id": "0193a4a4-7f3c-7c1e-9d2a-5b1f3e2d4c6b", "customer_id": "c1", "status": "confirmed",
        "items": [{"sku": "A001", "name": "Laptop", "quantity": 1, "unit_price": 899.99,
                   "discount_percent": 10, "line_total": 899.99}],
        "total": 899.99, "currency": "USD", "pricing": "live", "created_at": "2026-11-25T10:00:00Z"
    });
    api.assert_valid("Order", &order);
    // Pricing down and the sku never priced: no made-up price.
    let pending = json!({
        "order_id": "0193a4a4-7f3c-7c1e-9d2a-5b1f3e2d4c6b", "customer_id": "c1",
        "status": "pending_pricing",
        "items": [{"sku": "A009", "name": "Webcam", "quantity": 1, "unit_price": null,
                   "discount_percent": null, "line_total": null}],
        "total": null, "currency": null, "pricing": "fallback", "created_at": "2026-11-25T10:00:00Z"
    });
    api.assert_valid("Order", &pending);
    api.assert_valid("OrderList", &json!({"orders": [order], "count": 1}));
    api.assert_valid(
        "Problem",
        &json!({"type": "/problems/inventory_unavailable", "title": "Inventory unavailable",
                "status": 503, "detail": "Retry shortly.", "code": "inventory_unavailable"}),
    );
}

#[actix_web::test]
async fn the_listing_documents_status_cursor_and_next_cursor() {
    let stack = spawn_stack().await;
    let api = ApiDescription::fetch(&stack.order.client).await;
    let parameters = api.doc["paths"]["/orders"]["get"]["parameters"]
        .as_array()
        .expect("GET /orders has parameters");
    let parameter = |name: &str| {
        parameters
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} is documented"))
            .clone()
    };
    for name in ["customer_id", "status", "cursor", "limit"] {
        assert_eq!(parameter(name)["in"], "query", "{name}");
    }
    let status = parameter("status");
    let pattern = status["schema"]["pattern"].as_str().expect("a pattern");
    for name in [
        "pending",
        "confirmed",
        "pending_pricing",
        "rejected",
        "failed",
        "cancelled",
    ] {
        assert!(pattern.contains(name), "{name} in {pattern}");
    }

    // The documented examples are accepted as they stand.
    let cursor = parameter("cursor")["example"]
        .as_str()
        .expect("a cursor example")
        .to_owned();
    let example = status["example"].as_str().expect("a status example");
    let res = stack
        .order
        .client
        .get(&format!(
            "/orders?customer_id=c1&status={example}&cursor={cursor}"
        ))
        .await;
    res.assert_status(200);
    api.assert_valid("OrderList", &res.body);

    // A real page with more to come, and the last page.
    for _ in 0..2 {
        stack.place("c1", &[("A002", 1)]).await.assert_status(201);
    }
    let first = stack
        .order
        .client
        .get("/orders?customer_id=c1&limit=1")
        .await;
    assert!(first.body["next_cursor"].is_string());
    api.assert_valid("OrderList", &first.body);
    let cursor = first.body["next_cursor"].as_str().expect("a cursor");
    let last = stack
        .order
        .client
        .get(&format!("/orders?customer_id=c1&limit=1&cursor={cursor}"))
        .await;
    assert!(last.body["next_cursor"].is_null());
    api.assert_valid("OrderList", &last.body);
    api.assert_invalid(
        "OrderList",
        &json!({"orders": [], "count": 0, "next_cursor": "not a cursor"}),
    );

    let bad = stack
        .order
        .client
        .get("/orders?customer_id=c1&cursor=nope")
        .await;
    bad.assert_problem(400, "invalid_request");
    api.assert_valid("Problem", &bad.body);
}
