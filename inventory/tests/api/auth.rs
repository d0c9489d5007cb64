//! Inventory as a resource server: tokens of a provider it knows only by its
//! issuer URL, checked on the reservation routes; and every hostile token we
//! know of refused with a clean 401 that reserves nothing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use shared_testkit::issuer::{TestIssuer, TestKey};
use shared_testkit::{TestClient, captured_logs};

use crate::helpers::{TestApp, spawn_app_with};

const RESERVE: &str = "inventory:reserve";

async fn reserve_with(client: &TestClient, id: &str) -> shared_testkit::TestResponse {
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
async fn reservations_need_the_reserve_scope_once_an_issuer_is_set() {
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
    let confirm = json!({"reservation_ids": ["r-service"]});
    customer
        .post_json("/reservation-confirmations", &confirm)
        .await
        .assert_problem(403, "forbidden");
    let confirmed = service
        .post_json("/reservation-confirmations", &confirm)
        .await;
    confirmed.assert_status(200);
    assert_eq!(confirmed.body["reservations"][0]["status"], "confirmed");

    // Not required, but the route names a scope: fail closed.
    reserve_with(client, "r-anonymous")
        .await
        .assert_problem(401, "unauthorized");
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

#[actix_web::test]
async fn the_service_token_switches_fault_injection_and_anonymous_callers_cannot() {
    // No provider at all: the service token alone guards the control.
    let app = spawn_app_with(|config| {
        config.service_token = Some("s3cret".into());
        config.server.chaos_control = shared_config::Switch::On;
    })
    .await;
    let client = &app.server.client;
    let broken = json!({"failure_rate": 1});
    client
        .put_json("/admin/chaos", &broken)
        .await
        .assert_problem(401, "unauthorized");
    client
        .with_bearer("guess")
        .put_json("/admin/chaos", &broken)
        .await
        .assert_problem(401, "unauthorized");
    client.get("/items/A001").await.assert_status(200);
    let service = client.with_bearer("s3cret");
    service
        .put_json("/admin/chaos", &broken)
        .await
        .assert_status(200);
    assert!(client.get("/items/A001").await.status.is_server_error());
    service
        .put_json("/admin/chaos", &json!({"failure_rate": 0}))
        .await
        .assert_status(200);
    client.get("/items/A001").await.assert_status(200);
    reserve_with(&service, "r1").await.assert_status(201);
}

// --- Tokens that must pass ------------------------------------------------

#[actix_web::test]
async fn rs256_tokens_of_an_rsa_key_are_accepted() {
    let issuer = TestIssuer::start();
    let rsa = TestKey::rsa();
    issuer.publish(&rsa);
    let app = app_trusting(&issuer, true, None).await;
    let token = rsa.sign(&issuer.claims("order", &[RESERVE]));
    reserve_with(&app.server.client.with_bearer(&token), "r1")
        .await
        .assert_status(201);
}

#[actix_web::test]
async fn access_token_types_and_no_type_pass() {
    let issuer = TestIssuer::start();
    let app = app_trusting(&issuer, true, None).await;
    let claims = issuer.claims("order", &[RESERVE]);
    for (n, typ) in [
        None,
        Some("JWT"),
        Some("at+jwt"),
        Some("application/AT+JWT"),
    ]
    .into_iter()
    .enumerate()
    {
        let token = issuer.signer().sign_typed(&claims, typ);
        reserve_with(&app.server.client.with_bearer(&token), &format!("r{n}"))
            .await
            .assert_status(201);
    }
}

#[actix_web::test]
async fn a_string_audience_and_a_list_holding_ours_both_pass() {
    let issuer = TestIssuer::start();
    let app = app_trusting(&issuer, true, None).await;
    let mut claims = issuer.claims("order", &[RESERVE]);
    assert!(claims["aud"].is_string());
    let single = issuer.signer().sign(&claims);
    reserve_with(&app.server.client.with_bearer(&single), "r1")
        .await
        .assert_status(201);
    claims["aud"] = json!(["account", issuer.audience]);
    let several = issuer.signer().sign(&claims);
    reserve_with(&app.server.client.with_bearer(&several), "r2")
        .await
        .assert_status(201);
}

#[actix_web::test]
async fn a_token_sent_to_a_public_route_is_verified_and_plumbing_ignores_tokens() {
    let issuer = TestIssuer::start();
    let app = app_trusting(&issuer, false, None).await;
    let client = &app.server.client;
    let good = client.with_bearer(&issuer.token("alice", &[]));
    good.get("/items").await.assert_status(200);
    let bad = client.with_bearer("not.a.token");
    assert_invalid_token(&bad.get("/items").await);
    for path in [
        "/health",
        "/health/live",
        "/health/ready",
        "/metrics",
        "/openapi.json",
    ] {
        bad.get(path).await.assert_status(200);
    }
}

// --- Hostile tokens: each a 401 `invalid_token` that reserves nothing -----

/// Sends the token `forge` makes (with every scope a reservation needs) to
/// an app that trusts the issuer, and checks it is refused for `why` (a part
/// of the problem's detail) and changes nothing.
async fn assert_refused(why: &str, forge: impl FnOnce(&TestIssuer) -> String) {
    let issuer = TestIssuer::start();
    let app = app_trusting(&issuer, false, None).await;
    let before = app.stock("A001").await;
    let token = forge(&issuer);
    let res = reserve_with(&app.server.client.with_bearer(&token), "r-hostile").await;
    assert_invalid_token(&res);
    let detail = res.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(why), "refused for {detail:?}, not {why:?}");
    assert!(
        !res.text.contains(&token),
        "the token is echoed: {}",
        res.text
    );
    assert_eq!(app.stock("A001").await, before, "stock was reserved");
    // The reservation does not exist either (asked with a good token).
    let good = app
        .server
        .client
        .with_bearer(&issuer.token("order", &[RESERVE]));
    good.get("/reservations/r-hostile")
        .await
        .assert_problem(404, "reservation_not_found");
}

#[track_caller]
fn assert_invalid_token(res: &shared_testkit::TestResponse) {
    res.assert_problem(401, "unauthorized");
    let challenge = res.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with(r#"Bearer error="invalid_token""#),
        "challenge {challenge:?}"
    );
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Valid claims for a reservation, changed by `change`, signed by the issuer.
fn signed_with(issuer: &TestIssuer, change: impl FnOnce(&mut Value)) -> String {
    let mut claims = issuer.claims("order", &[RESERVE]);
    change(&mut claims);
    issuer.signer().sign(&claims)
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

#[actix_web::test]
async fn alg_none_is_refused() {
    assert_refused("not a well-formed JWT", |issuer| {
        let header = json!({"alg": "none", "typ": "JWT", "kid": issuer.signer().kid});
        let claims = issuer.claims("order", &[RESERVE]);
        format!("{}.{}.", b64(&header), b64(&claims))
    })
    .await;
}

#[actix_web::test]
async fn hs256_keyed_with_the_public_key_is_refused() {
    assert_refused("signed with HS256 are not accepted", |issuer| {
        let public = issuer.signer().jwk.to_string();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(issuer.signer().kid.clone());
        let claims = issuer.claims("order", &[RESERVE]);
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(public.as_bytes()),
        )
        .expect("HS256 signs anything")
    })
    .await;
}

#[actix_web::test]
async fn a_wrong_issuer_is_refused() {
    assert_refused("another issuer", |i| {
        signed_with(i, |c| c["iss"] = json!("http://evil.example"))
    })
    .await;
}

#[actix_web::test]
async fn a_wrong_audience_is_refused() {
    assert_refused("another audience", |i| {
        signed_with(i, |c| c["aud"] = json!(["account", "other"]))
    })
    .await;
}

#[actix_web::test]
async fn an_expired_token_is_refused() {
    assert_refused("has expired", |i| {
        signed_with(i, |c| {
            c["iat"] = json!(now() - 1000);
            c["nbf"] = json!(now() - 1000);
            c["exp"] = json!(now() - 120);
        })
    })
    .await;
}

#[actix_web::test]
async fn a_token_not_valid_yet_is_refused() {
    assert_refused("not valid yet", |i| {
        signed_with(i, |c| c["nbf"] = json!(now() + 120))
    })
    .await;
}

#[actix_web::test]
async fn a_token_issued_in_the_future_is_refused() {
    assert_refused("issued in the future", |i| {
        signed_with(i, |c| {
            c["iat"] = json!(now() + 3600);
            c["exp"] = json!(now() + 7200);
        })
    })
    .await;
}

#[actix_web::test]
async fn an_unknown_kid_is_refused() {
    assert_refused("not one of the issuer's", |issuer| {
        let mut key = issuer.signer().clone();
        key.kid = "no-such-key".into();
        key.sign(&issuer.claims("order", &[RESERVE]))
    })
    .await;
}

#[actix_web::test]
async fn a_tampered_payload_is_refused() {
    assert_refused("signature does not verify", |issuer| {
        // Signed for a customer without the scope; the payload then claims it.
        let token = issuer.token("alice", &[]);
        let parts: Vec<&str> = token.split('.').collect();
        let forged = b64(&issuer.claims("order", &[RESERVE]));
        format!("{}.{forged}.{}", parts[0], parts[2])
    })
    .await;
}

#[actix_web::test]
async fn a_key_the_issuer_does_not_publish_is_refused() {
    assert_refused("signature does not verify", |issuer| {
        let mut impostor = TestKey::generate();
        impostor.kid.clone_from(&issuer.signer().kid);
        impostor.sign(&issuer.claims("order", &[RESERVE]))
    })
    .await;
}

#[actix_web::test]
async fn a_token_without_sub_is_refused() {
    assert_refused("lacks a required claim", |i| {
        signed_with(i, |c| drop(c.as_object_mut().map(|o| o.remove("sub"))))
    })
    .await;
}

#[actix_web::test]
async fn a_token_without_exp_is_refused() {
    assert_refused("lacks a required claim", |i| {
        signed_with(i, |c| drop(c.as_object_mut().map(|o| o.remove("exp"))))
    })
    .await;
}

#[actix_web::test]
async fn an_oversized_token_is_refused_unread() {
    assert_refused("not a well-formed JWT", |i| {
        signed_with(i, |c| c["padding"] = json!("x".repeat(10 * 1024)))
    })
    .await;
}

#[actix_web::test]
async fn es256_under_the_kid_of_an_rsa_key_is_refused() {
    assert_refused("does not match its signing key", |issuer| {
        let rsa = TestKey::rsa();
        issuer.publish(&rsa);
        let mut ec = issuer.signer().clone();
        ec.kid = rsa.kid;
        ec.sign(&issuer.claims("order", &[RESERVE]))
    })
    .await;
}

#[actix_web::test]
async fn a_token_of_another_type_than_an_access_token_is_refused() {
    for typ in ["dpop+jwt", "logout+jwt", "secevent+jwt"] {
        assert_refused("type (typ)", |issuer| {
            let claims = issuer.claims("order", &[RESERVE]);
            issuer.signer().sign_typed(&claims, Some(typ))
        })
        .await;
    }
}

#[actix_web::test]
async fn a_token_of_an_rsa_key_under_2048_bits_is_refused_and_the_key_logged() {
    let short = TestKey::short_rsa();
    let kid = short.kid.clone();
    assert_refused("not one of the issuer's", |issuer| {
        issuer.publish(&short);
        short.sign(&issuer.claims("order", &[RESERVE]))
    })
    .await;
    let logged = captured_logs().into_iter().any(|line| {
        line["kid"] == kid.as_str()
            && line["bits"] == 1024
            && line["message"]
                .as_str()
                .is_some_and(|m| m.contains("RSA key is too short"))
    });
    assert!(logged, "the short key is not logged");
}

/// A 1 MB `Authorization` header never reaches the verifier: actix's HTTP/1
/// parser refuses headers past its buffer limit with a bare 431 (it answers
/// before any middleware runs, so not as problem+json) and closes.
#[actix_web::test]
async fn a_megabyte_authorization_header_gets_a_clean_4xx() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let issuer = TestIssuer::start();
    let app = app_trusting(&issuer, false, None).await;
    let before = app.stock("A001").await;
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", app.server.port))
        .await
        .expect("connecting");
    let (mut reader, mut writer) = stream.into_split();
    let token = "a".repeat(1024 * 1024);
    let request = format!(
        "POST /reservations HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}"
    );
    // The server answers and closes before it has read everything, so write
    // and read at once; the write may well fail with a reset.
    let writing = actix_web::rt::spawn(async move {
        let _ = writer.write_all(request.as_bytes()).await;
    });
    let mut answer = Vec::new();
    let _ = reader.read_to_end(&mut answer).await;
    let _ = writing.await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "answer: {answer:?}");
    assert_eq!(app.stock("A001").await, before);
}

#[actix_web::test]
async fn no_token_reaches_a_log_line_whether_accepted_or_refused() {
    let issuer = TestIssuer::start();
    let app = app_trusting(&issuer, false, Some("service-token-never-logged")).await;
    let client = &app.server.client;
    let good = issuer.token("order", &[RESERVE]);
    let expired = issuer.signer().sign(&json!({
        "iss": issuer.issuer, "aud": "shop", "sub": "order", "exp": 1, "scope": RESERVE,
    }));
    reserve_with(&client.with_bearer(&good), "logged-1")
        .await
        .assert_status(201);
    reserve_with(&client.with_bearer(&expired), "logged-2")
        .await
        .assert_problem(401, "unauthorized");
    reserve_with(
        &client.with_bearer("service-token-never-logged"),
        "logged-3",
    )
    .await
    .assert_status(201);
    reserve_with(&client.with_bearer("not.a.jwt-zq81x"), "logged-4")
        .await
        .assert_problem(401, "unauthorized");

    let logs = serde_json::to_string(&shared_testkit::captured_logs()).unwrap_or_default();
    assert!(
        logs.contains("/reservations"),
        "the requests were logged at all"
    );
    for secret in [
        good.as_str(),
        expired.as_str(),
        "service-token-never-logged",
        "not.a.jwt-zq81x",
    ] {
        // A signature is the part of a token that must never leak.
        let signature = secret.rsplit('.').next().unwrap_or(secret);
        assert!(!logs.contains(signature), "a token reached the logs");
    }
}
