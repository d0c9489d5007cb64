//! How inventory gets its provider's signing keys: rotation, withdrawal, the
//! background refresh, the limit on refetches that forged key ids cannot get
//! round, and a provider that cannot be reached or speaks for another issuer
//! (503, never 401 or 500).

use std::time::Duration;

use futures::future::join_all;
use serde_json::json;
use shared_auth::AuthConfig;
use shared_testkit::issuer::TestIssuer;
use shared_testkit::{TestClient, TestResponse, captured_logs, eventually};

use crate::helpers::{TestApp, spawn_app_with};

const RESERVE: &str = "inventory:reserve";

async fn app_with(auth: AuthConfig) -> TestApp {
    spawn_app_with(move |config| config.server.auth = auth).await
}

/// Auth required, trusting `issuer`, refetching at most every `refresh`.
fn trusting(issuer: &TestIssuer, refresh: Duration) -> AuthConfig {
    AuthConfig {
        jwks_refresh: refresh,
        ..issuer.auth_config(true)
    }
}

async fn reserve(client: &TestClient, token: &str, id: &str) -> TestResponse {
    client
        .with_bearer(token)
        .post_json(
            "/reservations",
            &json!({"reservation_id": id, "lines": [{"sku": "A001", "quantity": 1}]}),
        )
        .await
}

/// A call every verification reaches, that changes nothing.
async fn read(client: &TestClient, token: &str) -> TestResponse {
    client.with_bearer(token).get("/reservations/r1").await
}

/// How long a test waits for what should take about a second.
const PATIENCE: Duration = Duration::from_secs(20);

#[track_caller]
fn assert_unavailable(res: &TestResponse) {
    res.assert_problem(503, "auth_unavailable");
    assert!(res.header("retry-after").is_some(), "no Retry-After");
}

#[actix_web::test]
async fn a_rotated_key_is_fetched_when_first_seen_and_old_tokens_keep_working() {
    let mut issuer = TestIssuer::start();
    let app = app_with(trusting(&issuer, Duration::ZERO)).await;
    let client = &app.server.client;
    let old = issuer.token("order", &[RESERVE]);
    reserve(client, &old, "r1").await.assert_status(201);
    assert_eq!(issuer.jwks_fetches(), 1);

    issuer.rotate();
    let new = issuer.token("order", &[RESERVE]);
    reserve(client, &new, "r2").await.assert_status(201);
    assert_eq!(issuer.jwks_fetches(), 2, "the new kid fetches once");
    // The old key is still published: its tokens still pass, with no fetch.
    reserve(client, &old, "r3").await.assert_status(201);
    assert_eq!(issuer.jwks_fetches(), 2);
}

#[actix_web::test]
async fn forged_kids_cannot_make_the_service_hammer_the_provider() {
    let issuer = TestIssuer::start();
    let app = app_with(trusting(&issuer, Duration::from_secs(30))).await;
    let client = &app.server.client;
    reserve(client, &issuer.token("order", &[RESERVE]), "r1")
        .await
        .assert_status(201);
    let fetched = issuer.jwks_fetches();
    let forged = (0..50).map(|_| {
        // A kid as random as the claims' `jti`.
        let claims = issuer.claims("order", &[RESERVE]);
        let mut key = issuer.signer().clone();
        key.kid = format!("forged-{}", claims["jti"].as_str().unwrap_or_default());
        key.sign(&claims)
    });
    let tokens: Vec<String> = forged.collect();
    let answers = join_all(tokens.iter().map(|t| reserve(client, t, "r-forged"))).await;
    for res in &answers {
        res.assert_problem(401, "unauthorized");
    }
    assert!(
        issuer.jwks_fetches() <= fetched + 1,
        "{} fetches for 50 forged kids",
        issuer.jwks_fetches() - fetched
    );
}

#[actix_web::test]
async fn unreachable_keys_are_a_503_not_a_401() {
    let issuer = TestIssuer::start();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let auth = AuthConfig {
        jwks_url: Some(format!("http://127.0.0.1:{closed}/jwks.json")),
        ..trusting(&issuer, Duration::from_secs(30))
    };
    let app = app_with(auth).await;
    let token = issuer.token("order", &[RESERVE]);
    assert_unavailable(&reserve(&app.server.client, &token, "r1").await);
    // Within the refresh interval the failure is remembered: 503 again, not 401.
    assert_unavailable(&reserve(&app.server.client, &token, "r1").await);
}

#[actix_web::test]
async fn the_service_recovers_when_the_keys_come_back() {
    let issuer = TestIssuer::start();
    let app = app_with(trusting(&issuer, Duration::ZERO)).await;
    let token = issuer.token("order", &[RESERVE]);
    issuer.set_reachable(false);
    assert_unavailable(&reserve(&app.server.client, &token, "r1").await);
    issuer.set_reachable(true);
    reserve(&app.server.client, &token, "r1")
        .await
        .assert_status(201);
}

#[actix_web::test]
async fn a_failed_key_fetch_is_tried_again_within_seconds_not_a_refresh_period_later() {
    let issuer = TestIssuer::start();
    let app = app_with(trusting(&issuer, Duration::from_secs(30))).await;
    let token = issuer.token("order", &[RESERVE]);
    issuer.set_reachable(false);
    assert_unavailable(&reserve(&app.server.client, &token, "r1").await);
    // A lookup lost once, a provider restarting: back after a second, not 30.
    issuer.set_reachable(true);
    let took = eventually(
        "the keys fetched again",
        Duration::from_secs(5),
        async || read(&app.server.client, &token).await.status != 503,
    )
    .await;
    assert!(took < Duration::from_secs(3), "{took:?}");
    reserve(&app.server.client, &token, "r1")
        .await
        .assert_status(201);
}

#[actix_web::test]
async fn discovery_speaking_for_another_issuer_is_refused_and_logged() {
    let issuer = TestIssuer::start();
    // The same server under another name: its discovery names 127.0.0.1.
    let impostor = issuer.issuer.replace("127.0.0.1", "localhost");
    let auth = AuthConfig {
        issuer: Some(impostor.clone()),
        ..trusting(&issuer, Duration::from_secs(30))
    };
    let app = app_with(auth).await;
    let mut claims = issuer.claims("order", &[RESERVE]);
    claims["iss"] = json!(impostor);
    let token = issuer.signer().sign(&claims);
    assert_unavailable(&reserve(&app.server.client, &token, "r1").await);
    assert_eq!(
        issuer.jwks_fetches(),
        0,
        "keys fetched from a wrong provider"
    );
    let logged = captured_logs().into_iter().any(|line| {
        line["message"] == "fetching the signing keys failed"
            && line["error"]
                .as_str()
                .is_some_and(|e| e.contains(&impostor) && e.contains("is for issuer"))
    });
    assert!(logged, "the mismatch is not logged");
}

/// A rotation, then the old key withdrawn (as when it leaked): its tokens,
/// remembered ones included, stop passing within one refresh period, while
/// the new key's pass throughout.
#[actix_web::test]
async fn a_withdrawn_key_and_its_remembered_tokens_are_refused_within_one_refresh_period() {
    let mut issuer = TestIssuer::start();
    // The set stands one second (the floor set here is 0).
    issuer.set_max_age(Some(1));
    let app = app_with(trusting(&issuer, Duration::ZERO)).await;
    let client = &app.server.client;
    let old_key = issuer.signer().clone();
    let old = issuer.token("order", &[RESERVE]);
    reserve(client, &old, "r1").await.assert_status(201);
    // Verified once: now remembered, and answered from memory.
    read(client, &old).await.assert_status(200);
    issuer.rotate();
    let new = issuer.token("order", &[RESERVE]);
    read(client, &new).await.assert_status(200);
    read(client, &old).await.assert_status(200);

    issuer.withdraw(&old_key);
    let took = eventually(
        "the withdrawn key's token to be refused",
        PATIENCE,
        async || read(client, &old).await.status == 401,
    )
    .await;
    eprintln!(
        "a withdrawn key's token was refused {:.2} s after the withdrawal (max-age 1 s)",
        took.as_secs_f64()
    );
    read(client, &old).await.assert_problem(401, "unauthorized");
    read(client, &new).await.assert_status(200);
    // A token it signs from now on is refused too.
    let forged = old_key.sign(&issuer.claims("order", &[RESERVE]));
    read(client, &forged)
        .await
        .assert_problem(401, "unauthorized");
    let logged = captured_logs().into_iter().any(|line| {
        line["issuer"] == issuer.issuer.as_str()
            && line["withdrawn"]
                .as_str()
                .is_some_and(|kids| kids.contains(&old_key.kid))
    });
    assert!(logged, "the withdrawal is not logged");
}

#[actix_web::test]
async fn keys_are_refetched_as_the_provider_asks_and_a_failed_refresh_keeps_the_last_good_set() {
    let issuer = TestIssuer::start();
    issuer.set_max_age(Some(1));
    let app = app_with(trusting(&issuer, Duration::ZERO)).await;
    let client = &app.server.client;
    let token = issuer.token("order", &[RESERVE]);
    reserve(client, &token, "r1").await.assert_status(201);
    // No request asks for it: the background refresh fetches again.
    eventually("a background refresh", PATIENCE, async || {
        issuer.jwks_fetches() >= 3
    })
    .await;

    issuer.set_reachable(false);
    let failed = r#"auth_key_fetches_total{outcome="failed"} "#;
    eventually("a failed refresh to be counted", PATIENCE, async || {
        client
            .get("/metrics")
            .await
            .text
            .lines()
            .any(|l| l.starts_with(failed))
    })
    .await;
    // The last good set stays in use: remembered and new tokens pass.
    read(client, &token).await.assert_status(200);
    read(client, &issuer.token("order", &[RESERVE]))
        .await
        .assert_status(200);
    let logged = captured_logs().into_iter().any(|line| {
        line["issuer"] == issuer.issuer.as_str()
            && line["message"] == "fetching the signing keys failed"
            && line["keys_kept"] == 1
    });
    assert!(logged, "the failed refresh is not logged");
}
