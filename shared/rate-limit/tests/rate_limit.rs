//! Rate limits through a real server on a real socket: the stack of
//! `shared_server::start` around a few routes that only answer 200.
//!
//! The test client connects from 127.0.0.1; where a test trusts that as a
//! proxy, `X-Forwarded-For` stands for different clients behind it. Quotas
//! are a few requests per minute, so a test never waits for a refill and no
//! outcome depends on timing.

use std::num::NonZeroU32;

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use shared_http::metrics::Registry;
use shared_http::service::ServiceInfo;
use shared_rate_limit::RateLimitConfig;
use shared_rate_limit::SignInRoutes;
use shared_server::ServerConfig;
use shared_testkit::{Spawned, TestClient, TestResponse, init_tracing, spawn};

async fn ok() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"ok": true}))
}

fn quota(n: u32) -> Option<NonZeroU32> {
    NonZeroU32::new(n)
}

fn loopback_is_a_proxy() -> Vec<ipnet::IpNet> {
    vec!["127.0.0.0/8".parse().expect("a network")]
}

async fn spawn_with(limits: RateLimitConfig) -> Spawned {
    spawn_trusting(limits, shared_auth::AuthConfig::off()).await
}

async fn spawn_trusting(limits: RateLimitConfig, auth: shared_auth::AuthConfig) -> Spawned {
    init_tracing();
    let mut config = ServerConfig::for_tests();
    config.rate_limits = limits;
    config.auth = auth;
    let info = ServiceInfo::new("limited", "0.0.0");
    let server = shared_server::start(info, &config, Registry::default(), |cfg| {
        cfg.app_data(web::Data::new(SignInRoutes::new([(
            Method::POST,
            "/sessions",
        )])))
        .map(|cfg| {
            cfg.route("/things", web::get().to(ok))
                .route("/things", web::post().to(ok))
                .route("/sessions", web::post().to(ok))
        });
    })
    .expect("the server starts");
    spawn(server)
}

async fn get_from(client: &TestClient, path: &str, forwarded_for: &str) -> TestResponse {
    client
        .send(
            Method::GET,
            path,
            &[("x-forwarded-for", forwarded_for)],
            None,
        )
        .await
}

async fn post_from(client: &TestClient, path: &str, forwarded_for: &str) -> TestResponse {
    client
        .send(
            Method::POST,
            path,
            &[
                ("x-forwarded-for", forwarded_for),
                ("content-type", "application/json"),
            ],
            Some(b"{}".to_vec()),
        )
        .await
}

/// The value of the `http_requests_rate_limited_total` sample for `class`.
async fn rejected(client: &TestClient, class: &str) -> Option<f64> {
    let text = client.get("/metrics").await.text;
    let series = format!("http_requests_rate_limited_total{{class=\"{class}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.parse().ok())
}

#[actix_web::test]
async fn over_quota_reads_get_429_problem_with_retry_after_and_ratelimit_headers() {
    let app = spawn_with(RateLimitConfig {
        reads_per_min: quota(2),
        ..RateLimitConfig::off()
    })
    .await;
    for remaining in [1, 0] {
        let res = app.client.get("/things").await;
        res.assert_status(200);
        assert_eq!(
            res.header("ratelimit-policy").as_deref(),
            Some("\"reads\";q=2;w=60")
        );
        // One request's worth returns every 30 s at 2 a minute.
        assert_eq!(
            res.header("ratelimit"),
            Some(format!("\"reads\";r={remaining};t=30"))
        );
    }
    let res = app.client.get("/things").await;
    res.assert_problem(429, "rate_limited");
    assert_eq!(res.body["title"], "Too Many Requests");
    let retry_after: u64 = res
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in whole seconds");
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    assert_eq!(
        res.header("ratelimit"),
        Some(format!("\"reads\";r=0;t={retry_after}"))
    );
    assert_eq!(
        res.header("ratelimit-policy").as_deref(),
        Some("\"reads\";q=2;w=60")
    );
}

#[actix_web::test]
async fn each_client_behind_a_trusted_proxy_has_its_own_quota() {
    let app = spawn_with(RateLimitConfig {
        reads_per_min: quota(1),
        trusted_proxies: loopback_is_a_proxy(),
        ..RateLimitConfig::off()
    })
    .await;
    let client = &app.client;
    get_from(client, "/things", "198.51.100.1")
        .await
        .assert_status(200);
    get_from(client, "/things", "198.51.100.1")
        .await
        .assert_problem(429, "rate_limited");
    get_from(client, "/things", "198.51.100.2")
        .await
        .assert_status(200);
    // A client cannot borrow another's quota by prepending an address: only
    // the right-most hop, the one our proxy wrote, is believed.
    get_from(client, "/things", "198.51.100.3, 198.51.100.1")
        .await
        .assert_problem(429, "rate_limited");
    get_from(client, "/things", "2001:db8::1")
        .await
        .assert_status(200);
}

#[actix_web::test]
async fn an_untrusted_peers_forwarded_for_is_ignored() {
    let app = spawn_with(RateLimitConfig {
        reads_per_min: quota(1),
        ..RateLimitConfig::off()
    })
    .await;
    get_from(&app.client, "/things", "198.51.100.1")
        .await
        .assert_status(200);
    // Same peer, another claimed client: still the peer's quota.
    get_from(&app.client, "/things", "198.51.100.2")
        .await
        .assert_problem(429, "rate_limited");
}

#[actix_web::test]
async fn reads_and_writes_have_separate_quotas_and_the_metric_counts_each_429() {
    let app = spawn_with(RateLimitConfig {
        reads_per_min: quota(2),
        writes_per_min: quota(1),
        ..RateLimitConfig::off()
    })
    .await;
    let client = &app.client;
    assert_eq!(rejected(client, "reads").await, None, "no 429 yet");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(client.get("/things").await.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 429, 429, 429]);
    let write = client.post_json("/things", &serde_json::json!({})).await;
    write.assert_status(200);
    assert_eq!(
        write.header("ratelimit").as_deref(),
        Some("\"writes\";r=0;t=60"),
        "the reads spent nothing of the writes quota"
    );
    client
        .post_json("/things", &serde_json::json!({}))
        .await
        .assert_problem(429, "rate_limited");
    assert_eq!(rejected(client, "reads").await, Some(3.0));
    assert_eq!(rejected(client, "writes").await, Some(1.0));
    assert_eq!(rejected(client, "sign_in").await, None);
}

#[actix_web::test]
async fn health_metrics_openapi_and_preflights_are_never_limited() {
    let app = spawn_with(RateLimitConfig {
        reads_per_min: quota(1),
        writes_per_min: quota(1),
        ..RateLimitConfig::off()
    })
    .await;
    let client = &app.client;
    client.get("/things").await.assert_status(200);
    client
        .get("/things")
        .await
        .assert_problem(429, "rate_limited");
    for path in [
        "/health",
        "/health/live",
        "/health/ready",
        "/metrics",
        "/openapi.json",
    ] {
        for _ in 0..3 {
            let res = client.get(path).await;
            res.assert_status(200);
            assert_eq!(res.header("ratelimit"), None, "{path}");
        }
    }
    for _ in 0..3 {
        let preflight = client
            .send(
                Method::OPTIONS,
                "/things",
                &[
                    ("origin", "http://shop.test"),
                    ("access-control-request-method", "POST"),
                ],
                None,
            )
            .await;
        assert!(preflight.status.is_success(), "{}", preflight.status);
    }
    // The preflights left the writes quota whole.
    client
        .post_json("/things", &serde_json::json!({}))
        .await
        .assert_status(200);
}

#[actix_web::test]
async fn with_no_quota_set_nothing_is_ever_limited() {
    let app = spawn_with(RateLimitConfig::off()).await;
    for _ in 0..30 {
        let read = app.client.get("/things").await;
        read.assert_status(200);
        assert_eq!(read.header("ratelimit"), None);
        let write = app
            .client
            .post_json("/sessions", &serde_json::json!({}))
            .await;
        write.assert_status(200);
        assert_eq!(write.header("ratelimit-policy"), None);
    }
    assert_eq!(rejected(&app.client, "reads").await, None);
}

#[actix_web::test]
async fn sign_in_routes_spend_the_sign_in_quota_by_address_instead_of_the_writes_quota() {
    let app = spawn_with(RateLimitConfig {
        writes_per_min: quota(5),
        sign_in_per_min: quota(1),
        trusted_proxies: loopback_is_a_proxy(),
        ..RateLimitConfig::off()
    })
    .await;
    let client = &app.client;
    let first = post_from(client, "/sessions", "198.51.100.1").await;
    first.assert_status(200);
    assert_eq!(
        first.header("ratelimit-policy").as_deref(),
        Some("\"sign_in\";q=1;w=60")
    );
    let second = post_from(client, "/sessions", "198.51.100.1").await;
    second.assert_problem(429, "rate_limited");
    assert!(second.header("retry-after").is_some());
    post_from(client, "/sessions", "198.51.100.2")
        .await
        .assert_status(200);
    let write = post_from(client, "/things", "198.51.100.1").await;
    write.assert_status(200);
    assert_eq!(
        write.header("ratelimit").as_deref(),
        Some("\"writes\";r=4;t=12"),
        "sign-ins spent nothing of the writes quota"
    );
    assert_eq!(rejected(client, "sign_in").await, Some(1.0));
    assert_eq!(rejected(client, "writes").await, None);
}

#[actix_web::test]
async fn callers_with_verified_tokens_have_their_own_quota_whatever_their_address() {
    let issuer = shared_testkit::issuer::TestIssuer::start();
    let app = spawn_trusting(
        RateLimitConfig {
            reads_per_min: quota(1),
            ..RateLimitConfig::off()
        },
        issuer.auth_config(false),
    )
    .await;
    // Three callers from the same address: two subjects and an anonymous one.
    let alice = app.client.with_bearer(&issuer.token("alice", &[]));
    let bob = app.client.with_bearer(&issuer.token("bob", &[]));
    alice.get("/things").await.assert_status(200);
    alice
        .get("/things")
        .await
        .assert_problem(429, "rate_limited");
    bob.get("/things").await.assert_status(200);
    app.client.get("/things").await.assert_status(200);
    app.client
        .get("/things")
        .await
        .assert_problem(429, "rate_limited");
    // A second token of alice's is still alice.
    let alice_again = app.client.with_bearer(&issuer.token("alice", &[]));
    alice_again
        .get("/things")
        .await
        .assert_problem(429, "rate_limited");
}
