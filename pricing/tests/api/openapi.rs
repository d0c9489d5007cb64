//! `GET /openapi.json` describes exactly what pricing serves, and the
//! contract's examples fit it.

use serde_json::json;
use shared_testkit::openapi::ApiDescription;

use crate::helpers::spawn_app;

/// Every route pricing serves: the contract's, then the plumbing's.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/price/{sku}"),
    ("POST", "/price/bulk"),
    ("GET", "/prices"),
    ("PUT", "/price/{sku}"),
    ("GET", "/price/{sku}/history"),
    ("GET", "/health"),
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

#[actix_web::test]
async fn openapi_describes_every_route_and_nothing_else() {
    let app = spawn_app().await;
    let api = ApiDescription::fetch(&app.client).await;
    api.assert_operations(ROUTES);
    api.assert_undocumented_methods_are_405(&app.client).await;
}

#[actix_web::test]
async fn every_documented_operation_answers_as_documented() {
    let app = spawn_app().await;
    let api = ApiDescription::fetch(&app.client).await;
    assert_eq!(api.probe(&app.client).await, ROUTES.len());
}

#[actix_web::test]
async fn contract_examples_fit_the_description() {
    let app = spawn_app().await;
    let api = ApiDescription::fetch(&app.client).await;
    api.assert_valid(
        "Price",
        &json!({"sku": "A001", "base_price": 999.99, "discount_percent": 10, "final_price": 899.99,
                "currency": "USD", "discounted": true}),
    );
    api.assert_valid(
        "Price",
        &json!({"sku": "A002", "base_price": 25.50, "discount_percent": 5, "final_price": 24.23,
                "currency": "USD", "discounted": true, "quantity": 10, "line_total": 242.3}),
    );
    api.assert_valid("BulkPriceRequest", &json!({"skus": ["A001", "B001"]}));
    api.assert_valid(
        "BulkPriceRequest",
        &json!({"items": [{"sku": "A001", "quantity": 10}]}),
    );
    api.assert_valid(
        "BulkPriceResponse",
        &json!({"prices": [{"sku": "A001", "base_price": 999.99, "discount_percent": 10,
                            "final_price": 899.99, "currency": "USD", "discounted": true}],
                "not_found": ["Z999"]}),
    );
    api.assert_valid(
        "Problem",
        &json!({"type": "/problems/price_not_found", "title": "Price not found", "status": 404,
                "detail": "There is no price for sku Z999.", "code": "price_not_found", "sku": "Z999"}),
    );
    // Both shapes at once, or neither, is not a bulk request.
    api.assert_invalid(
        "BulkPriceRequest",
        &json!({"skus": ["A001"], "items": [{"sku": "A001", "quantity": 1}]}),
    );
    api.assert_invalid("BulkPriceRequest", &json!({}));
}
