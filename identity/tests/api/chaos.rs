//! Identity's own fault control (`/admin/chaos`): once identity can issue a
//! token with a scope, it is closed to anyone without `chaos:write`, even
//! with no `AUTH_ISSUER` configured (fail closed).

use serde_json::json;
use shared_config::Switch;

use crate::helpers::{OPERATOR, PASSWORD, TestApp, spawn_app_with};

const CONTROL: &str = "/admin/chaos";

async fn app(operators: bool) -> TestApp {
    spawn_app_with(move |c| {
        c.server.chaos_control = Switch::On;
        if !operators {
            c.operators.clear();
            c.clients.clear();
        }
    })
    .await
}

#[actix_web::test]
async fn with_operators_only_an_operators_token_switches_identitys_faults() {
    let app = app(true).await;
    let client = app.client();
    let body = json!({"failure_rate": 0});
    client
        .get(CONTROL)
        .await
        .assert_problem(401, "unauthorized");
    client
        .put_json(CONTROL, &body)
        .await
        .assert_problem(401, "unauthorized");
    let customer = app.sign_up("ada@example.com", PASSWORD).await;
    customer.assert_status(201);
    let signed_in = app.sign_in("ada@example.com", PASSWORD).await;
    let token = signed_in.body["access_token"].as_str().expect("a token");
    client
        .with_bearer(token)
        .put_json(CONTROL, &body)
        .await
        .assert_problem(403, "forbidden");
    let operator = app.sign_in(OPERATOR, PASSWORD).await;
    let token = operator.body["access_token"].as_str().expect("a token");
    client
        .with_bearer(token)
        .put_json(CONTROL, &body)
        .await
        .assert_status(200);
}

#[actix_web::test]
async fn with_no_one_to_hold_a_scope_it_stays_open_as_in_the_demo() {
    let app = app(false).await;
    app.client().get(CONTROL).await.assert_status(200);
}
