//! Setting prices (`PUT /price/{sku}`, `GET /price/{sku}/history`): who may,
//! what the read paths answer next, and the history it leaves.

use serde_json::{Value, json};
use shared_testkit::TestClient;
use shared_testkit::issuer::TestIssuer;

use crate::helpers::{TestApp, spawn_app, spawn_app_with, start, test_config};

const WRITE: &str = "pricing:write";

async fn put_price(client: &TestClient, sku: &str, body: &Value) -> shared_testkit::TestResponse {
    client.put_json(&format!("/price/{sku}"), body).await
}

async fn app_trusting(issuer: &TestIssuer, required: bool) -> TestApp {
    let auth = issuer.auth_config(required);
    spawn_app_with(move |config| config.server.auth = auth).await
}

#[actix_web::test]
async fn a_new_price_is_what_get_and_bulk_answer_next() {
    let app = spawn_app().await;
    let set = put_price(
        &app.client,
        "A001",
        &json!({"base_price": 1099.5, "discount_percent": 20, "tiers": []}),
    )
    .await;
    set.assert_status(200);
    assert_eq!(
        set.body,
        json!({"sku": "A001", "base_price": 1099.5, "discount_percent": 20,
               "final_price": 879.6, "currency": "USD", "discounted": true})
    );
    assert_eq!(app.client.get("/price/A001").await.body, set.body);
    // Its own (empty) tiers replace the catalogue's 15 % at 200 units.
    let many = app.client.get("/price/A001?quantity=200").await;
    assert_eq!(many.body["discount_percent"], 20);
    assert_eq!(many.body["line_total"], 175_920.0);

    let bulk = app
        .client
        .post_json(
            "/price/bulk",
            &json!({"items": [{"sku": "A001", "quantity": 2}, {"sku": "A002", "quantity": 1}]}),
        )
        .await;
    bulk.assert_status(200);
    assert_eq!(bulk.body["prices"][0]["final_price"], 879.6);
    assert_eq!(bulk.body["prices"][0]["line_total"], 1759.2);
    assert_eq!(bulk.body["prices"][1]["final_price"], 25.5);
}

#[actix_web::test]
async fn a_sku_without_a_price_gets_one_and_is_listed() {
    let app = spawn_app().await;
    app.client
        .get("/price/D001")
        .await
        .assert_problem(404, "price_not_found");
    let created = put_price(
        &app.client,
        "D001",
        &json!({"base_price": 12, "discount_percent": 0,
                "tiers": [{"min_quantity": 5, "discount_percent": 10},
                          {"min_quantity": 20, "discount_percent": 25}]}),
    )
    .await;
    // 200 as for any price set: the contract's answer to PUT /price/{sku}.
    created.assert_status(200);
    assert_eq!(created.body["final_price"], 12.0);
    let tiered = app.client.get("/price/D001?quantity=20").await;
    assert_eq!(tiered.body["final_price"], 9.0);
    let listed = app.client.get("/prices").await;
    let prices = listed.body["prices"].as_array().expect("prices");
    assert_eq!(prices.last().map(|p| &p["sku"]), Some(&json!("D001")));
    assert_eq!(prices.first().map(|p| &p["sku"]), Some(&json!("A001")));
    let bulk = app
        .client
        .post_json("/price/bulk", &json!({"skus": ["D001", "Z999"]}))
        .await;
    assert_eq!(bulk.body["prices"][0]["sku"], "D001");
    assert_eq!(bulk.body["not_found"], json!(["Z999"]));
}

#[actix_web::test]
async fn leaving_tiers_out_keeps_the_catalogue_tiers() {
    let app = spawn_app().await;
    put_price(
        &app.client,
        "A002",
        &json!({"base_price": 30, "discount_percent": 0}),
    )
    .await
    .assert_status(200);
    let res = app.client.get("/price/A002?quantity=10").await;
    assert_eq!(res.body["discount_percent"], 5);
    assert_eq!(res.body["final_price"], 28.5);
}

#[actix_web::test]
async fn prices_set_survive_a_restart_on_the_same_database() {
    let app = spawn_app().await;
    put_price(
        &app.client,
        "B001",
        &json!({"base_price": 149.99, "discount_percent": 0}),
    )
    .await
    .assert_status(200);
    put_price(
        &app.client,
        "D001",
        &json!({"base_price": 5, "discount_percent": 50}),
    )
    .await
    .assert_status(200);
    app.shutdown.shutdown(std::time::Duration::ZERO).await;
    app.task.await.expect("server task").expect("clean exit");

    let mut again = start(test_config(&app.db)).await;
    assert_eq!(
        again.client.get("/price/B001").await.body["final_price"],
        149.99
    );
    assert_eq!(
        again.client.get("/price/D001").await.body["final_price"],
        2.5
    );
    // The catalogue seeds an empty store only: shipped prices are untouched.
    assert_eq!(
        again.client.get("/price/A001").await.body["final_price"],
        899.99
    );
    let history = again.client.get("/price/B001/history").await;
    assert_eq!(history.body["count"], 1);
    again.stop().await;
}

#[actix_web::test]
async fn history_lists_each_change_newest_first_with_its_actor() {
    let app = spawn_app().await;
    assert_eq!(
        app.client.get("/price/A002/history").await.body["changes"],
        json!([]),
        "seeded prices have no history"
    );
    for base in [26, 27] {
        put_price(
            &app.client,
            "A002",
            &json!({"base_price": base, "discount_percent": 0}),
        )
        .await
        .assert_status(200);
    }
    put_price(
        &app.client,
        "A002",
        &json!({"base_price": 28, "discount_percent": 5, "tiers": [{"min_quantity": 3, "discount_percent": 8}]}),
    )
    .await
    .assert_status(200);
    let history = app.client.get("/price/A002/history").await;
    history.assert_status(200);
    assert_eq!(history.body["sku"], "A002");
    assert_eq!(history.body["count"], 3);
    let changes = history.body["changes"].as_array().expect("changes");
    let bases: Vec<&Value> = changes.iter().map(|c| &c["base_price"]).collect();
    assert_eq!(bases, [&json!(28.0), &json!(27.0), &json!(26.0)]);
    assert_eq!(
        changes[0]["tiers"],
        json!([{"min_quantity": 3, "discount_percent": 8}])
    );
    assert_eq!(changes[1]["tiers"], Value::Null);
    for change in changes {
        assert_eq!(change["actor"], "anonymous", "{change}");
        assert!(
            change["at"].as_str().is_some_and(|at| at.ends_with('Z')),
            "{change}"
        );
    }
    let page = app.client.get("/price/A002/history?limit=1").await;
    assert_eq!(page.body["count"], 1);
    app.client
        .get("/price/A002/history?limit=0")
        .await
        .assert_problem(400, "invalid_request");
    app.client
        .get("/price/Z999/history")
        .await
        .assert_problem(404, "price_not_found");
}

#[actix_web::test]
async fn operators_set_prices_and_are_recorded_as_the_actor() {
    let issuer = TestIssuer::start();
    let app = app_trusting(&issuer, false).await;
    let operator = app.client.with_bearer(&issuer.token("alice", &[WRITE]));
    put_price(
        &operator,
        "C001",
        &json!({"base_price": 16, "discount_percent": 0}),
    )
    .await
    .assert_status(200);
    let history = operator.get("/price/C001/history").await;
    history.assert_status(200);
    assert_eq!(history.body["changes"][0]["actor"], "alice");
    // Reading prices still needs nothing.
    assert_eq!(
        app.client.get("/price/C001").await.body["final_price"],
        16.0
    );
}

#[actix_web::test]
async fn customers_without_the_scope_are_forbidden() {
    let issuer = TestIssuer::start();
    let app = app_trusting(&issuer, false).await;
    let customer = app.client.with_bearer(&issuer.token("bob", &[]));
    put_price(
        &customer,
        "A001",
        &json!({"base_price": 1, "discount_percent": 0}),
    )
    .await
    .assert_problem(403, "forbidden");
    customer
        .get("/price/A001/history")
        .await
        .assert_problem(403, "forbidden");
    assert_eq!(
        app.client.get("/price/A001").await.body["final_price"],
        899.99
    );
}

/// Fail closed: once an issuer is configured, a route naming a scope needs a
/// token whether or not `AUTH_REQUIRED` is set; reads stay open.
#[actix_web::test]
async fn anonymous_price_changes_are_refused_once_an_issuer_is_set_required_or_not() {
    let issuer = TestIssuer::start();
    for required in [true, false] {
        let app = app_trusting(&issuer, required).await;
        let refused = put_price(
            &app.client,
            "A001",
            &json!({"base_price": 1, "discount_percent": 0}),
        )
        .await;
        refused.assert_problem(401, "unauthorized");
        assert_eq!(
            refused.header("www-authenticate").as_deref(),
            Some("Bearer"),
            "required: {required}"
        );
        app.client
            .get("/price/A001/history")
            .await
            .assert_problem(401, "unauthorized");
        assert_eq!(
            app.client.get("/price/A001").await.body["final_price"],
            899.99,
            "required: {required}: the price changed"
        );
        app.client
            .post_json("/price/bulk", &json!({"skus": ["A001"]}))
            .await
            .assert_status(200);
    }
}

#[actix_web::test]
async fn bad_price_bodies_are_400_problems() {
    let app = spawn_app().await;
    let eleven: Vec<Value> = (2..13)
        .map(|q| json!({"min_quantity": q, "discount_percent": 1}))
        .collect();
    let cases = [
        json!({}),
        json!({"base_price": 10}),
        json!({"discount_percent": 0}),
        json!({"base_price": 0, "discount_percent": 0}),
        json!({"base_price": -5, "discount_percent": 0}),
        json!({"base_price": 1_000_000.01, "discount_percent": 0}),
        json!({"base_price": 1.234, "discount_percent": 0}),
        json!({"base_price": "10", "discount_percent": 0}),
        json!({"base_price": 10, "discount_percent": 101}),
        json!({"base_price": 10, "discount_percent": -1}),
        json!({"base_price": 10, "discount_percent": 2.5}),
        json!({"base_price": 10, "discount_percent": 0, "tiers": [{"min_quantity": 1, "discount_percent": 5}]}),
        json!({"base_price": 10, "discount_percent": 0, "tiers": [{"min_quantity": 10, "discount_percent": 5}, {"min_quantity": 10, "discount_percent": 6}]}),
        json!({"base_price": 10, "discount_percent": 0, "tiers": [{"min_quantity": 10, "discount_percent": 5}, {"min_quantity": 5, "discount_percent": 6}]}),
        json!({"base_price": 10, "discount_percent": 0, "tiers": [{"min_quantity": 10, "discount_percent": 101}]}),
        json!({"base_price": 10, "discount_percent": 0, "tiers": eleven}),
        json!({"base_price": 10, "discount_percent": 0, "currency": "EUR"}),
    ];
    for body in cases {
        let res = put_price(&app.client, "A001", &body).await;
        assert_eq!(res.status, 400, "{body}: {}", res.text);
        assert!(res.body["code"].is_string(), "{body}: {}", res.text);
    }
    put_price(
        &app.client,
        "bad%20sku",
        &json!({"base_price": 1, "discount_percent": 0}),
    )
    .await
    .assert_problem(400, "invalid_request");
    let huge = r#"{"base_price": 1e400, "discount_percent": 0}"#;
    let res = app
        .client
        .send(
            actix_web::http::Method::PUT,
            "/price/A001",
            &[("content-type", "application/json")],
            Some(huge.as_bytes().to_vec()),
        )
        .await;
    assert_eq!(res.status, 400, "{}", res.text);
    // Nothing was changed by any of them.
    assert_eq!(
        app.client.get("/price/A001").await.body["final_price"],
        899.99
    );
    assert_eq!(app.client.get("/price/A001/history").await.body["count"], 0);
}
