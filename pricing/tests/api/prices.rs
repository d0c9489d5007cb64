use serde_json::json;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn get_price_returns_the_contract_price() {
    let app = spawn_app().await;
    let res = app.client.get("/price/A001").await;
    res.assert_status(200);
    assert_eq!(
        res.body,
        json!({"sku": "A001", "base_price": 999.99, "discount_percent": 10,
               "final_price": 899.99, "currency": "USD", "discounted": true})
    );
    let res = app.client.get("/price/C001").await;
    assert_eq!(res.body["final_price"], 14.96);
    assert_eq!(res.body["discount_percent"], 5);
}

#[actix_web::test]
async fn get_price_with_quantity_applies_tiers_and_totals_the_line() {
    let app = spawn_app().await;
    let res = app.client.get("/price/A002?quantity=10").await;
    res.assert_status(200);
    assert_eq!(res.body["discount_percent"], 5);
    assert_eq!(res.body["final_price"], 24.23);
    assert_eq!(res.body["quantity"], 10);
    assert_eq!(res.body["line_total"], 242.3);
}

#[actix_web::test]
async fn get_price_returns_404_for_an_unknown_sku() {
    let app = spawn_app().await;
    app.client
        .get("/price/Z999")
        .await
        .assert_problem(404, "price_not_found");
    app.client
        .get("/price/bad%20sku")
        .await
        .assert_problem(404, "price_not_found");
}

#[actix_web::test]
async fn get_price_rejects_bad_quantities() {
    let app = spawn_app().await;
    for q in ["0", "100001", "-1", "ten"] {
        let res = app.client.get(&format!("/price/A001?quantity={q}")).await;
        assert_eq!(res.status, 400, "quantity={q}: {}", res.text);
    }
}

#[actix_web::test]
async fn bulk_by_skus_prices_known_skus_and_lists_the_rest() {
    let app = spawn_app().await;
    let res = app
        .client
        .post_json("/price/bulk", &json!({"skus": ["A001", "B001", "Z999"]}))
        .await;
    res.assert_status(200);
    let prices = res.body["prices"].as_array().expect("prices");
    assert_eq!(prices.len(), 2);
    assert_eq!(prices[0]["sku"], "A001");
    assert_eq!(prices[1]["final_price"], 199.0);
    assert_eq!(res.body["not_found"], json!(["Z999"]));
}

#[actix_web::test]
async fn bulk_by_items_applies_quantities() {
    let app = spawn_app().await;
    let res = app
        .client
        .post_json(
            "/price/bulk",
            &json!({"items": [{"sku": "A001", "quantity": 2}, {"sku": "C001", "quantity": 3}]}),
        )
        .await;
    res.assert_status(200);
    assert_eq!(res.body["prices"][0]["line_total"], 1799.98);
    assert_eq!(res.body["prices"][1]["line_total"], 44.88);
    assert_eq!(res.body["not_found"], json!([]));
}

#[actix_web::test]
async fn bulk_rejects_invalid_requests() {
    let app = spawn_app().await;
    let cases = [
        json!({}),
        json!({"skus": []}),
        json!({"skus": ["A001"], "items": [{"sku": "A001", "quantity": 1}]}),
        json!({"items": [{"sku": "A001", "quantity": 0}]}),
        json!({"skus": ["not a sku"]}),
        json!({"skus": "A001"}),
        json!({"skus": ["A001"], "extra": true}),
    ];
    for body in cases {
        let res = app.client.post_json("/price/bulk", &body).await;
        assert_eq!(res.status, 400, "{body}: {}", res.text);
        assert!(res.body["code"].is_string(), "{body}: {}", res.text);
    }
}

#[actix_web::test]
async fn prices_lists_the_catalogue() {
    let app = spawn_app().await;
    let res = app.client.get("/prices").await;
    res.assert_status(200);
    assert!(res.body["count"].as_u64().expect("count") >= 12);
}
