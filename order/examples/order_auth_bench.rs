//! What verifying bearer tokens costs `GET /orders/{id}`: the order service
//! with auth off and no token, and with auth on and a customer's valid token
//! on every request (the verified-token memory warm), three wrk runs each,
//! taken in turns (off, on, off, on, ...) so that a change in the machine's
//! load falls on both alike. Real inventory and pricing run beside it to
//! place the order read.
//!
//! Not a test: figures depend on the machine. Run on a release build, with
//! wrk installed (Debian package `wrk`):
//!
//!   cargo run --release -p order --example order_auth_bench
//!   DURATION=10s CONNECTIONS=32 THREADS=2 RUNS=3 cargo run --release -p order --example order_auth_bench

use std::time::Duration;

use serde_json::json;
use shared_auth::AuthConfig;
use shared_resilience::breaker::BreakerConfig;
use shared_server::ServerConfig;
use shared_testkit::issuer::TestIssuer;
use shared_testkit::{Spawned, TestDatabase, spawn};

/// Inventory and pricing, auth off, on fresh stores.
async fn dependencies() -> (Spawned, Spawned, Vec<TestDatabase>) {
    let (inventory_db, pricing_db) = (
        TestDatabase::create("inventory-bench").await,
        TestDatabase::create("pricing-bench").await,
    );
    let inventory = inventory::startup::build(inventory::config::Config {
        server: ServerConfig::for_tests(),
        database: inventory_db.config.clone(),
        catalog: inventory::domain::Catalog::shipped(),
        reservation_ttl: Duration::from_secs(3600),
        item_cache_ttl: std::time::Duration::from_millis(500),
        service_token: None,
        events: shared_events::EventsConfig::off(),
    });
    let pricing = pricing::startup::build(pricing::config::Config {
        server: ServerConfig::for_tests(),
        database: pricing_db.config.clone(),
        price_book: pricing::domain::PriceBook::shipped(),
        events: shared_events::EventsConfig::off(),
    });
    let inventory = spawn(inventory.await.expect("inventory starts"));
    let pricing = spawn(pricing.await.expect("pricing starts"));
    (inventory, pricing, vec![inventory_db, pricing_db])
}

async fn order(
    auth: AuthConfig,
    inventory: &Spawned,
    pricing: &Spawned,
) -> (Spawned, TestDatabase) {
    let db = TestDatabase::create("order-bench").await;
    let config = order::config::Config {
        server: ServerConfig {
            auth,
            ..ServerConfig::for_tests()
        },
        database: db.config.clone(),
        inventory_url: inventory.client.base.clone(),
        pricing_url: pricing.client.base.clone(),
        request_timeout: Duration::from_secs(2),
        breaker: BreakerConfig {
            failure_threshold: 5,
            reset_timeout: Duration::from_secs(30),
        },
        service_token: None,
        reservation_ttl: Duration::from_secs(3600),
        events: shared_events::EventsConfig::off(),
        calls: order::config::CallConfig::default(),
    };
    let server = spawn(order::startup::build(config).await.expect("order starts"));
    (server, db)
}

/// Places one order as `bench` and reads it once (keys fetched, token
/// remembered); returns the URL to load.
async fn prepare(server: &Spawned, token: Option<&str>) -> String {
    let client = match token {
        Some(token) => server.client.with_bearer(token),
        None => server.client.clone(),
    };
    let placed = client
        .post_json(
            "/orders",
            &json!({"customer_id": "bench", "skus": ["A002"]}),
        )
        .await;
    placed.assert_status(201);
    let id = placed.body["order_id"]
        .as_str()
        .expect("an order id")
        .to_owned();
    client
        .get(&format!("/orders/{id}"))
        .await
        .assert_status(200);
    format!("{}/orders/{id}", server.client.base)
}

#[actix_web::main]
async fn main() {
    let issuer = TestIssuer::start();
    let token = issuer.token("bench", &[]);
    let (inventory, pricing, _dbs) = dependencies().await;
    let (off, _db_off) = order(AuthConfig::off(), &inventory, &pricing).await;
    let (on, _db_on) = order(issuer.auth_config(true), &inventory, &pricing).await;
    let off_url = prepare(&off, None).await;
    let on_url = prepare(&on, Some(&token)).await;
    let runs: u32 = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    for n in 1..=runs {
        for (label, url, token) in [
            ("auth off, no token", &off_url, None),
            ("auth on, customer token", &on_url, Some(token.clone())),
        ] {
            let url = url.clone();
            let run = actix_web::rt::task::spawn_blocking(move || {
                shared_testkit::wrk::run(&url, token.as_deref())
            })
            .await
            .expect("the wrk thread");
            println!(
                "{label:<24} run {n}: {:>8.0} rps  p99 {:>6.2} ms  non-2xx {}",
                run.requests_per_second, run.p99_ms, run.non_2xx
            );
        }
    }
}
