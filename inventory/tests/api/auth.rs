//! Inventory as a resource server: tokens of a provider it knows only by its
//! issuer URL, checked on the reservation routes.

use serde_json::json;
use shared::testing::TestClient;
use shared::testing::issuer::TestIssuer;

use crate::helpers::{TestApp, spawn_app_with};

const RESERVE: &str = "inventory:reserve";

async fn reserve_with(client: &TestClient, id: &str) -> shared::testing::TestResponse {
    client
        .post_json(
            "/reservations",
            &json!({"reservation_id": id, "lines": [{"sku": "A001", "quantity": 1}]}),
        )
        .await
}

async fn app_trusting(issuer: &TestIssuer, required: bool, service_token: Option<&str>) -> TestApp {
    let auth = issuer.auth_config(required);
    let token = service_token.map(str::to_owned);
    spawn_app_with(move |config| {
        config.server.auth = auth;
        config.service_token = token;
    })
    .await
}

#[actix_web::test]
async fn reservations_need_the_reserve_scope_once_a_token_is_sent() {
    let issuer = TestIssuer::start();
    let app = app_trusting(&issuer, false, None).await;
    let client = &app.server.client;

    let customer = client.with_bearer(&issuer.token("alice", &[]));
    reserve_with(&customer, "r-customer")
        .await
        .assert_problem(403, "forbidden");
    let challenge = reserve_with(&customer, "r-customer2")
        .await
        .header("www-authenticate");
    assert_eq!(
        challenge.as_deref(),
        Some(r#"Bearer error="insufficient_scope", scope="inventory:reserve""#)
    );

    let service = client.with_bearer(&issuer.token("order", &[RESERVE]));
    reserve_with(&service, "r-service").await.assert_status(201);
    service
        .get("/reservations/r-service")
        .await
        .assert_status(200);

    // Not required: an anonymous caller is served as without auth.
    reserve_with(client, "r-anonymous").await.assert_status(201);
    // Public reads never need a token.
    client.get("/items/A001").await.assert_status(200);
}

#[actix_web::test]
async fn required_auth_refuses_anonymous_reservations_but_not_catalogue_reads() {
    let issuer = TestIssuer::start();
    let app = app_trusting(&issuer, true, None).await;
    let client = &app.server.client;
    let refused = reserve_with(client, "r1").await;
    refused.assert_problem(401, "unauthorized");
    assert_eq!(
        refused.header("www-authenticate").as_deref(),
        Some("Bearer")
    );
    client.get("/items").await.assert_status(200);
    client.get("/health/ready").await.assert_status(200);
}

#[actix_web::test]
async fn the_service_token_keeps_working_beside_signed_tokens() {
    let issuer = TestIssuer::start();
    let app = app_trusting(&issuer, false, Some("s3cret")).await;
    let client = &app.server.client;
    reserve_with(&client.with_bearer("s3cret"), "r1")
        .await
        .assert_status(201);
    // The service token guards the scope: anonymous is refused, as before tokens.
    reserve_with(client, "r2")
        .await
        .assert_problem(401, "unauthorized");
    // A wrong service token is not a JWT either: refused as a bad token.
    reserve_with(&client.with_bearer("guess"), "r3")
        .await
        .assert_problem(401, "unauthorized");
    let signed = client.with_bearer(&issuer.token("order", &[RESERVE]));
    reserve_with(&signed, "r4").await.assert_status(201);
}
