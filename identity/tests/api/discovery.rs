//! `GET /.well-known/openid-configuration`.

use crate::helpers::{ISSUER, spawn_app};

#[actix_web::test]
async fn discovery_points_at_the_keys_and_the_token_endpoint() {
    let app = spawn_app().await;
    let res = app.client().get("/.well-known/openid-configuration").await;
    res.assert_status(200);
    let doc = &res.body;
    assert_eq!(doc["issuer"], ISSUER);
    assert_eq!(doc["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));
    assert_eq!(doc["token_endpoint"], format!("{ISSUER}/token"));
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic"])
    );
    assert_eq!(
        doc["grant_types_supported"],
        serde_json::json!(["client_credentials"])
    );
    assert_eq!(
        doc["response_types_supported"],
        serde_json::json!(["token"])
    );
    assert_eq!(
        doc["subject_types_supported"],
        serde_json::json!(["public"])
    );
    let scopes = doc["scopes_supported"].as_array().expect("scopes");
    assert_eq!(scopes.len(), 5);
    assert!(scopes.contains(&"inventory:reserve".into()));
    let claims = doc["claims_supported"].as_array().expect("claims");
    for claim in ["iss", "aud", "sub", "exp", "iat", "nbf", "jti", "scope"] {
        assert!(claims.contains(&claim.into()), "{claim}");
    }
    // The URLs it names are served here (by path).
    app.client()
        .get("/.well-known/jwks.json")
        .await
        .assert_status(200);
}
