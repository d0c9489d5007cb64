//! Live fault control (`GET/PUT /admin/chaos`, shared plumbing), exercised
//! through the pricing service: a change applies to the very next request,
//! the route exists only with `CHAOS_CONTROL=on`, bad bodies are refused
//! whole, and once tokens exist only `chaos:write` may switch it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shared_config::Switch;
use shared_testkit::issuer::TestIssuer;
use shared_testkit::openapi::ApiDescription;
use shared_testkit::{TestClient, captured_logs};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

const CONTROL: &str = "/admin/chaos";

async fn controlled() -> TestApp {
    spawn_app_with(|c| c.server.chaos_control = Switch::On).await
}

async fn set(client: &TestClient, body: &Value) -> Value {
    let res = client.put_json(CONTROL, body).await;
    res.assert_status(200);
    res.body.clone()
}

#[actix_web::test]
async fn a_change_applies_to_the_very_next_request() {
    let app = controlled().await;
    app.client.get("/price/A001").await.assert_status(200);

    let now = set(&app.client, &json!({"failure_rate": 1})).await;
    assert_eq!(
        now,
        json!({"delay_rate": 0.0, "delay_ms": {"min": 0, "max": 0},
               "failure_rate": 1.0, "routes": []})
    );
    let failed = app.client.get("/price/A001").await;
    assert!(failed.status.is_server_error(), "{}", failed.status);
    assert_eq!(failed.body["code"], "chaos_injected");
    // The probes and the control itself are never faulted, so a drill can end.
    app.client.get("/health/ready").await.assert_status(200);
    assert_eq!(app.client.get(CONTROL).await.body, now);

    set(&app.client, &json!({"failure_rate": 0})).await;
    app.client.get("/price/A001").await.assert_status(200);
}

#[actix_web::test]
async fn a_delay_set_live_holds_the_next_request_back() {
    let app = controlled().await;
    set(
        &app.client,
        &json!({"delay_rate": 1, "delay_ms": {"min": 300, "max": 300}}),
    )
    .await;
    let started = Instant::now();
    app.client.get("/price/A001").await.assert_status(200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[actix_web::test]
async fn a_route_selection_faults_those_routes_only() {
    let app = controlled().await;
    let now = set(
        &app.client,
        &json!({"failure_rate": 1, "routes": ["get /price/{id}"]}),
    )
    .await;
    assert_eq!(now["routes"], json!(["GET /price/{id}"]));
    assert!(app.client.get("/price/A001").await.status.is_server_error());
    app.client.get("/prices").await.assert_status(200);
    app.client
        .post_json("/price/bulk", &json!({"skus": ["A001"]}))
        .await
        .assert_status(200);

    set(&app.client, &json!({"routes": ["/prices"]})).await;
    app.client.get("/price/A001").await.assert_status(200);
    assert!(app.client.get("/prices").await.status.is_server_error());
}

#[actix_web::test]
async fn bad_bodies_are_refused_whole_and_change_nothing() {
    let app = controlled().await;
    let before = app.client.get(CONTROL).await.body;
    let res = app
        .client
        .put_json(
            CONTROL,
            &json!({"failure_rate": 1.5, "delay_rate": 1, "delay_ms": "800-300",
                    "routes": ["/health", "GET /nowhere"]}),
        )
        .await;
    res.assert_problem(400, "invalid_request");
    assert_eq!(
        res.body["errors"].as_array().map(Vec::len),
        Some(4),
        "{}",
        res.text
    );
    for body in [
        json!({"delay_ms": 30_001}),
        json!({"delay_ms": "slow"}),
        json!({"delay_rate": -0.1}),
        json!({"failure-rate": 1}),
        json!({"failure_rate": "all"}),
        json!({"routes": ["/price/{sku}/nowhere"]}),
        json!({"routes": ["DELETE /prices"]}),
        json!([1]),
    ] {
        app.client
            .put_json(CONTROL, &body)
            .await
            .assert_problem(400, "invalid_request");
    }
    app.client
        .send(
            actix_web::http::Method::PUT,
            CONTROL,
            &[("content-type", "application/json")],
            Some(b"{\"failure_rate\": ".to_vec()),
        )
        .await
        .assert_problem(400, "malformed_json");
    assert_eq!(app.client.get(CONTROL).await.body, before);
    app.client.get("/price/A001").await.assert_status(200);
}

#[actix_web::test]
async fn without_chaos_control_the_route_does_not_exist() {
    let app = spawn_app().await;
    app.client
        .get(CONTROL)
        .await
        .assert_problem(404, "not_found");
    app.client
        .put_json(CONTROL, &json!({"failure_rate": 1}))
        .await
        .assert_problem(404, "not_found");
    app.client.get("/price/A001").await.assert_status(200);
    let api = ApiDescription::fetch(&app.client).await;
    assert!(!api.operations().iter().any(|(_, path)| path == CONTROL));
}

#[actix_web::test]
async fn the_description_documents_the_control_when_it_exists() {
    let app = controlled().await;
    let api = ApiDescription::fetch(&app.client).await;
    assert!(
        api.operations()
            .contains(&("PUT".to_owned(), CONTROL.to_owned()))
    );
    assert!(
        api.operations()
            .contains(&("GET".to_owned(), CONTROL.to_owned()))
    );
    assert!(
        api.probe(&app.client).await > 0,
        "every operation answers as documented"
    );
    let doc = app.client.get("/openapi.json").await.body;
    let path = &doc["paths"][CONTROL];
    assert!(
        !path.to_string().contains("chaos_injected"),
        "never faulted: {path}"
    );
    api.assert_valid(
        "ChaosUpdate",
        &json!({"delay_rate": 1, "delay_ms": {"min": 300, "max": 800}, "failure_rate": 0,
                "routes": ["GET /price/{sku}"]}),
    );
    api.assert_valid("ChaosUpdate", &json!({"delay_ms": "100-500"}));
    api.assert_valid("ChaosView", &app.client.get(CONTROL).await.body);
}

#[actix_web::test]
async fn with_tokens_only_chaos_write_may_switch_it_and_the_change_is_logged() {
    let issuer = TestIssuer::start();
    // Optional tokens: anonymous callers read prices, but never switch faults.
    let auth = issuer.auth_config(false);
    let app = spawn_app_with(move |c| {
        c.server.auth = auth;
        c.server.chaos_control = Switch::On;
    })
    .await;
    let body = json!({"failure_rate": 1});
    app.client.get("/price/A001").await.assert_status(200);
    app.client
        .put_json(CONTROL, &body)
        .await
        .assert_problem(401, "unauthorized");
    app.client
        .get(CONTROL)
        .await
        .assert_problem(401, "unauthorized");
    let customer = app
        .client
        .with_bearer(&issuer.token("bob", &["pricing:write"]));
    customer
        .put_json(CONTROL, &body)
        .await
        .assert_problem(403, "forbidden");
    app.client.get("/price/A001").await.assert_status(200);

    let token = issuer.token("ops-chaos-7", &["chaos:write"]);
    let operator = app.client.with_bearer(&token);
    set(&operator, &body).await;
    assert!(app.client.get("/price/A001").await.status.is_server_error());
    let logged = captured_logs()
        .into_iter()
        .find(|line| line["actor"] == "ops-chaos-7")
        .expect("the change is logged with who made it");
    assert_eq!(logged["message"], "chaos settings changed");
    assert_eq!(logged["failure_rate"], 1.0);
    assert!(!logged.to_string().contains(&token), "no token in the log");
}
