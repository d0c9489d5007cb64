//! `GET /openapi.json` describes exactly what inventory serves, and the
//! contract's examples fit it.

use serde_json::json;
use shared_testkit::openapi::ApiDescription;

use crate::helpers::spawn_app;

/// Every route inventory serves: the contract's, then the plumbing's.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/items"),
    ("GET", "/items/{sku}"),
    ("GET", "/categories"),
    ("PUT", "/items/{sku}"),
    ("POST", "/items/{sku}/stock"),
    ("GET", "/items/{sku}/history"),
    ("POST", "/reservations"),
    ("GET", "/reservations/{id}"),
    ("DELETE", "/reservations/{id}"),
    ("POST", "/reservation-confirmations"),
    ("POST", "/reservations/{id}/confirm"),
    ("GET", "/health"),
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

#[actix_web::test]
async fn openapi_describes_every_route_and_nothing_else() {
    let app = spawn_app().await;
    let api = ApiDescription::fetch(&app.server.client).await;
    api.assert_operations(ROUTES);
    api.assert_undocumented_methods_are_405(&app.server.client)
        .await;
}

#[actix_web::test]
async fn every_documented_operation_answers_as_documented() {
    let app = spawn_app().await;
    let api = ApiDescription::fetch(&app.server.client).await;
    assert_eq!(api.probe(&app.server.client).await, ROUTES.len());
}

#[actix_web::test]
async fn the_reservation_endpoints_document_both_token_schemes() {
    let app = spawn_app_with_token().await;
    let api = ApiDescription::fetch(&app.server.client).await;
    for (method, path) in ROUTES {
        let operation = &api.doc["paths"][path][method.to_lowercase()];
        let guarded = path.starts_with("/reservation");
        assert_eq!(
            operation["security"] == json!([{"service_token": []}, {"bearer_token": []}]),
            guarded,
            "{method} {path}"
        );
        // Catalogue management needs a bearer token with `inventory:write`.
        let managed =
            (*method != "GET" && path.starts_with("/items/")) || path.ends_with("/history");
        assert_eq!(
            operation["security"] == json!([{"bearer_token": []}]),
            managed,
            "{method} {path}"
        );
        assert_eq!(
            operation["responses"].get("401").is_some(),
            guarded || managed,
            "{method} {path}"
        );
        assert_eq!(
            operation["responses"].get("403").is_some(),
            guarded || managed,
            "{method} {path}"
        );
    }
    let schemes = &api.doc["components"]["securitySchemes"];
    assert_eq!(
        schemes["service_token"],
        json!({"type": "http", "scheme": "bearer"})
    );
    assert_eq!(schemes["bearer_token"]["bearerFormat"], "JWT");
    // And the 401 the description promises is what a caller without the token gets.
    let res = app.reserve("r1", &[("A001", 1)]).await;
    res.assert_problem(401, "unauthorized");
}

async fn spawn_app_with_token() -> crate::helpers::TestApp {
    crate::helpers::spawn_app_with(|c| c.service_token = Some("s3cret".into())).await
}

#[actix_web::test]
async fn contract_examples_fit_the_description() {
    let app = spawn_app().await;
    let api = ApiDescription::fetch(&app.server.client).await;
    let laptop = json!({"sku": "A001", "name": "Laptop", "category": "electronics", "stock": 50});
    api.assert_valid("Item", &laptop);
    api.assert_valid("ItemList", &json!({"items": [laptop], "count": 1}));
    api.assert_valid(
        "PutItemRequest",
        &json!({"name": "Laptop", "category": "electronics"}),
    );
    api.assert_valid(
        "AdjustStockRequest",
        &json!({"delta": -5, "reason": "damaged in transit"}),
    );
    api.assert_valid(
        "ItemHistory",
        &json!({"sku": "A001", "count": 2, "changes": [
            {"at": "2026-11-27T10:00:00Z", "actor": "alice", "kind": "stock",
             "delta": -5, "reason": "damaged", "stock_after": 45},
            {"at": "2026-11-27T09:00:00Z", "actor": "anonymous", "kind": "created",
             "name": "Laptop", "category": "electronics"}]}),
    );
    api.assert_valid(
        "CreateReservationRequest",
        &json!({"reservation_id": "order-1", "lines": [{"sku": "A001", "quantity": 2}]}),
    );
    api.assert_valid(
        "Reservation",
        &json!({"reservation_id": "order-1", "status": "reserved",
                "expires_at": "2026-11-25T10:01:00Z",
                "items": [{"sku": "A001", "name": "Laptop", "category": "electronics", "quantity": 2}]}),
    );
    api.assert_valid(
        "Reservation",
        &json!({"reservation_id": "order-1", "status": "confirmed", "expires_at": null,
                "items": [{"sku": "A001", "name": "Laptop", "category": "electronics", "quantity": 2}]}),
    );
    let stock_problem = json!({"type": "/problems/insufficient_stock", "title": "Not enough stock",
                               "status": 409, "detail": "Not enough stock for B002.",
                               "code": "insufficient_stock", "skus": ["B002"]});
    api.assert_valid("Problem", &stock_problem);
    api.assert_valid("SkusProblem", &stock_problem);
    api.assert_invalid(
        "CreateReservationRequest",
        &json!({"reservation_id": "order-1", "lines": [], "extra": true}),
    );
}
