//! What verifying bearer tokens costs inventory: `GET /reservations/{id}`
//! with auth off and no token, then with auth on and a valid token on every
//! request (the verified-token memory warm), three wrk runs each; then the
//! cost of one uncached ES256 verification.
//!
//! Not a test: figures depend on the machine. Run on a release build, with
//! wrk installed (Debian package `wrk`):
//!
//!   cargo run --release -p inventory --example inventory_auth_bench
//!   DURATION=10s CONNECTIONS=32 THREADS=2 RUNS=3 cargo run --release -p inventory --example inventory_auth_bench

use std::time::{Duration, Instant};

use inventory::config::Config;
use inventory::domain::Catalog;
use serde_json::json;
use shared_auth::AuthConfig;
use shared_auth::jwt::Verifier;
use shared_server::ServerConfig;
use shared_testkit::issuer::TestIssuer;
use shared_testkit::{Spawned, TestDatabase, spawn};

const RESERVE: &str = "inventory:reserve";

async fn start(auth: AuthConfig) -> (Spawned, TestDatabase) {
    let db = TestDatabase::create("inventory-bench").await;
    let config = Config {
        server: ServerConfig {
            auth,
            ..ServerConfig::for_tests()
        },
        database: db.config.clone(),
        catalog: Catalog::shipped(),
        reservation_ttl: Duration::from_secs(3600),
        item_cache_ttl: std::time::Duration::from_millis(500),
        service_token: None,
        events: shared_events::EventsConfig::off(),
    };
    let server = spawn(
        inventory::startup::build(config)
            .await
            .expect("inventory starts"),
    );
    (server, db)
}

async fn measure(label: &str, server: &Spawned, token: Option<String>) {
    let client = match &token {
        Some(token) => server.client.with_bearer(token),
        None => server.client.clone(),
    };
    let created = client
        .post_json(
            "/reservations",
            &json!({"reservation_id": "bench-1", "lines": [{"sku": "A001", "quantity": 1}]}),
        )
        .await;
    created.assert_status(201);
    // Warm: the keys fetched and the token remembered before wrk starts.
    client.get("/reservations/bench-1").await.assert_status(200);
    let url = format!("{}/reservations/bench-1", server.client.base);
    shared_testkit::wrk::runs(label, &url, token.as_deref()).await;
}

/// The mean time of one ES256 verification the memory cannot answer.
async fn uncached_verify(issuer: &TestIssuer) {
    let verifier = Verifier::new(&issuer.auth_config(true)).expect("auth is on");
    let tokens: Vec<String> = (0..2000)
        .map(|_| issuer.token("bench", &[RESERVE]))
        .collect();
    verifier.verify(&tokens[0]).await.expect("a valid token");
    let started = Instant::now();
    for token in &tokens[1..] {
        verifier.verify(token).await.expect("a valid token");
    }
    let each = started.elapsed() / 1999;
    println!("uncached ES256 verify: {each:?} each (1999 distinct tokens)");
}

#[actix_web::main]
async fn main() {
    let issuer = TestIssuer::start();
    let (off, _db_off) = start(AuthConfig::off()).await;
    measure("auth off, no token", &off, None).await;
    let (on, _db_on) = start(issuer.auth_config(true)).await;
    let token = issuer.token("bench", &[RESERVE]);
    measure("auth on, valid token", &on, Some(token)).await;
    uncached_verify(&issuer).await;
}
