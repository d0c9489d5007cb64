//! `GET /openapi.json` describes exactly what identity serves.

use serde_json::json;
use shared_testkit::openapi::ApiDescription;

use crate::helpers::spawn_app;

const ROUTES: &[(&str, &str)] = &[
    ("POST", "/accounts"),
    ("POST", "/sessions"),
    ("POST", "/token"),
    ("GET", "/.well-known/openid-configuration"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/health"),
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

#[actix_web::test]
async fn openapi_describes_every_route_and_nothing_else() {
    let app = spawn_app().await;
    let api = ApiDescription::fetch(app.client()).await;
    api.assert_operations(ROUTES);
    api.assert_undocumented_methods_are_405(app.client()).await;
}

#[actix_web::test]
async fn every_documented_operation_answers_as_documented() {
    let app = spawn_app().await;
    let api = ApiDescription::fetch(app.client()).await;
    assert_eq!(api.probe(app.client()).await, ROUTES.len());
}

#[actix_web::test]
async fn contract_shapes_fit_the_description() {
    let app = spawn_app().await;
    let api = ApiDescription::fetch(app.client()).await;
    api.assert_valid(
        "CreateAccountRequest",
        &json!({"email": "ada@example.com", "password": "correct horse battery", "name": "Ada"}),
    );
    api.assert_valid(
        "OAuthError",
        &json!({"error": "invalid_client", "error_description": "unknown client or wrong secret"}),
    );
    api.assert_invalid(
        "OAuthError",
        &json!({"error": "server_error", "error_description": "x"}),
    );
}
