//! `POST /token`: the client credentials grant and every RFC 6749 §5.2 error.

use identity::clients::{ClientConfig, Secret};
use identity::domain::Scope;
use shared_testkit::TestResponse;

use crate::helpers::{CLIENT_ID, CLIENT_SECRET, basic, spawn_app, spawn_app_with};

#[track_caller]
fn assert_oauth_error(res: &TestResponse, status: u16, error: &str) {
    assert_eq!(res.status.as_u16(), status, "{}", res.text);
    assert_eq!(
        res.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(res.body["error"], error, "{}", res.text);
    assert!(res.body["error_description"].is_string(), "{}", res.text);
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
    assert!(!res.text.contains(CLIENT_SECRET));
}

#[actix_web::test]
async fn a_client_gets_all_its_scopes_or_the_ones_it_asks_for() {
    let app = spawn_app().await;
    let auth = basic(CLIENT_ID, CLIENT_SECRET);
    let res = app
        .token(Some(&auth), "grant_type=client_credentials")
        .await;
    res.assert_status(200);
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(res.header("pragma").as_deref(), Some("no-cache"));
    assert_eq!(res.body["token_type"], "Bearer");
    assert_eq!(res.body["expires_in"], 900);
    assert_eq!(res.body["scope"], "inventory:reserve inventory:write");
    let claims = app
        .verify(res.body["access_token"].as_str().expect("a token"))
        .await;
    assert_eq!(claims["sub"], CLIENT_ID);
    assert_eq!(claims["scope"], "inventory:reserve inventory:write");

    let res = app
        .token(
            Some(&auth),
            "grant_type=client_credentials&scope=inventory%3Areserve",
        )
        .await;
    res.assert_status(200);
    assert_eq!(res.body["scope"], "inventory:reserve");
    let claims = app
        .verify(res.body["access_token"].as_str().expect("a token"))
        .await;
    assert_eq!(claims["scope"], "inventory:reserve");
}

#[actix_web::test]
async fn basic_credentials_are_form_urlencoded_before_base64() {
    let (id, secret) = ("svc:one/ä", "p@ss w+rd%:&=");
    let app = spawn_app_with(|c| {
        c.clients.push(ClientConfig {
            client_id: id.into(),
            client_secret: Secret::new(secret),
            scopes: vec![Scope::PricingWrite],
        });
    })
    .await;
    let res = app
        .token(Some(&basic(id, secret)), "grant_type=client_credentials")
        .await;
    res.assert_status(200);
    assert_eq!(res.body["scope"], "pricing:write");
    let claims = app
        .verify(res.body["access_token"].as_str().expect("a token"))
        .await;
    assert_eq!(claims["sub"], id);
}

#[actix_web::test]
async fn a_missing_or_wrong_client_is_invalid_client_with_a_basic_challenge() {
    let app = spawn_app().await;
    for auth in [
        None,
        Some(basic(CLIENT_ID, "wrong")),
        Some(basic("nobody", CLIENT_SECRET)),
        Some("Basic not-base64!".to_owned()),
    ] {
        let res = app
            .token(auth.as_deref(), "grant_type=client_credentials")
            .await;
        assert_oauth_error(&res, 401, "invalid_client");
        assert_eq!(
            res.header("www-authenticate").as_deref(),
            Some(r#"Basic realm="identity""#)
        );
    }
    // Identity verifies the bearer tokens it issued (its /admin/chaos needs
    // one): a bad one is refused as on every service, before any route.
    app.token(Some("Bearer abc"), "grant_type=client_credentials")
        .await
        .assert_problem(401, "unauthorized");
}

#[actix_web::test]
async fn malformed_requests_are_invalid_request() {
    let app = spawn_app().await;
    let auth = basic(CLIENT_ID, CLIENT_SECRET);
    assert_oauth_error(&app.token(Some(&auth), "").await, 400, "invalid_request");
    assert_oauth_error(
        &app.token(Some(&auth), "scope=inventory%3Areserve").await,
        400,
        "invalid_request",
    );
    assert_oauth_error(
        &app.token(
            Some(&auth),
            "grant_type=client_credentials&grant_type=client_credentials",
        )
        .await,
        400,
        "invalid_request",
    );
    let json = app
        .client()
        .send(
            actix_web::http::Method::POST,
            "/token",
            &[
                ("content-type", "application/json"),
                ("authorization", &auth),
            ],
            Some(br#"{"grant_type":"client_credentials"}"#.to_vec()),
        )
        .await;
    assert_oauth_error(&json, 400, "invalid_request");
}

#[actix_web::test]
async fn other_grants_are_unsupported_grant_type() {
    let app = spawn_app().await;
    let auth = basic(CLIENT_ID, CLIENT_SECRET);
    for grant in ["password", "authorization_code", "refresh_token"] {
        let res = app.token(Some(&auth), &format!("grant_type={grant}")).await;
        assert_oauth_error(&res, 400, "unsupported_grant_type");
    }
}

#[actix_web::test]
async fn a_scope_beyond_the_clients_is_invalid_scope() {
    let app = spawn_app().await;
    let auth = basic(CLIENT_ID, CLIENT_SECRET);
    for scope in [
        "orders%3Aadmin",
        "inventory%3Areserve+orders%3Aadmin",
        "root",
    ] {
        let res = app
            .token(
                Some(&auth),
                &format!("grant_type=client_credentials&scope={scope}"),
            )
            .await;
        assert_oauth_error(&res, 400, "invalid_scope");
    }
}
