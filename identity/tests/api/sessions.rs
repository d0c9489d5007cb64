//! `POST /sessions`: tokens that verify with the published keys.

use actix_web::http::Method;
use serde_json::json;

use crate::helpers::{ISSUER, OPERATOR, PASSWORD, spawn_app};

#[actix_web::test]
async fn signing_in_returns_a_token_that_verifies_with_the_jwks() {
    let app = spawn_app().await;
    let account = app.sign_up("ada@example.com", PASSWORD).await;
    let customer_id = account.body["customer_id"].as_str().expect("an id");

    let res = app.sign_in("ADA@example.com ", PASSWORD).await;
    res.assert_status(200);
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(res.header("pragma").as_deref(), Some("no-cache"));
    assert_eq!(res.body["token_type"], "Bearer");
    assert_eq!(res.body["expires_in"], 900);
    assert_eq!(res.body["customer_id"], customer_id);

    let claims = app
        .verify(res.body["access_token"].as_str().expect("a token"))
        .await;
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], "shop");
    assert_eq!(claims["sub"], customer_id);
    assert_eq!(claims["scope"], "", "a customer has no operator scopes");
    let iat = claims["iat"].as_u64().expect("iat");
    assert_eq!(claims["exp"].as_u64(), Some(iat + 900));
    assert_eq!(claims["nbf"].as_u64(), Some(iat));
    assert!(uuid::Uuid::parse_str(claims["jti"].as_str().expect("jti")).is_ok());
}

#[actix_web::test]
async fn provisioned_operators_get_the_operator_scopes_and_cannot_be_signed_up() {
    let app = spawn_app().await;
    // The operator's account was provisioned at start-up: nobody can take
    // its email by signing up first, whatever the case.
    app.sign_up(&OPERATOR.to_uppercase(), "another password 1")
        .await
        .assert_problem(409, "email_taken");
    let res = app.sign_in(OPERATOR, PASSWORD).await;
    res.assert_status(200);
    let claims = app
        .verify(res.body["access_token"].as_str().expect("a token"))
        .await;
    let mut scopes: Vec<&str> = claims["scope"]
        .as_str()
        .expect("scope")
        .split(' ')
        .collect();
    scopes.sort_unstable();
    assert_eq!(
        scopes,
        [
            "chaos:write",
            "inventory:write",
            "orders:admin",
            "pricing:write"
        ]
    );
}

#[actix_web::test]
async fn a_wrong_password_and_an_unknown_email_get_byte_identical_answers() {
    let app = spawn_app().await;
    app.sign_up("ada@example.com", PASSWORD)
        .await
        .assert_status(201);
    let attempt = |email: &'static str| {
        let body = json!({"email": email, "password": "not the password"}).to_string();
        let client = app.client().clone();
        async move {
            client
                .send(
                    Method::POST,
                    "/sessions",
                    &[
                        ("content-type", "application/json"),
                        ("x-request-id", "same-request"),
                    ],
                    Some(body.into_bytes()),
                )
                .await
        }
    };
    let wrong_password = attempt("ada@example.com").await;
    let unknown_email = attempt("bob@example.com").await;
    wrong_password.assert_problem(401, "invalid_credentials");
    assert_eq!(wrong_password.text, unknown_email.text);
    assert_eq!(wrong_password.status, unknown_email.status);
    for name in [
        "content-type",
        "cache-control",
        "www-authenticate",
        "retry-after",
    ] {
        assert_eq!(
            wrong_password.header(name),
            unknown_email.header(name),
            "{name}"
        );
    }
    // A malformed email is no different.
    let malformed = attempt("not-an-email").await;
    assert_eq!(malformed.text, wrong_password.text);
}
