//! What verifying bearer tokens costs inventory: `GET /reservations/{id}`
//! with auth off and no token, then with auth on and a valid token on every
//! request (the verified-token memory warm), three wrk runs each; then the
//! cost of one uncached ES256 verification.
//!
//! Not a test: figures depend on the machine. Run on a release build, with
//! wrk installed (Debian package `wrk`):
//!
//!   cargo run --release -p inventory --example auth_bench
//!   DURATION=10s CONNECTIONS=32 THREADS=2 RUNS=3 cargo run --release -p inventory --example auth_bench

use std::time::{Duration, Instant};

use inventory::config::Config;
use inventory::domain::Catalog;
use serde_json::json;
use shared::auth::jwt::Verifier;
use shared::config::{AuthConfig, ServerConfig};
use shared::testing::issuer::TestIssuer;
use shared::testing::{Spawned, TestDatabase, spawn};

const RESERVE: &str = "inventory:reserve";

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

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
        service_token: None,
    };
    let server = spawn(
        inventory::startup::build(config)
            .await
            .expect("inventory starts"),
    );
    (server, db)
}

/// One wrk run: (requests per second, p99 in ms, non-2xx answers).
fn wrk(url: &str, token: Option<&str>) -> (f64, f64, u64) {
    let mut command = std::process::Command::new("wrk");
    command.args([
        "--latency",
        "-d",
        &setting("DURATION", "10s"),
        "-c",
        &setting("CONNECTIONS", "32"),
        "-t",
        &setting("THREADS", "2"),
    ]);
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let output = command
        .arg(url)
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(prefix)
                    .map(str::trim)
                    .map(str::to_owned)
            })
            .unwrap_or_default()
    };
    let rps = field("Requests/sec:").parse().unwrap_or(0.0);
    let p99 = millis(&field("99%"));
    let non_2xx = field("Non-2xx or 3xx responses:").parse().unwrap_or(0);
    (rps, p99, non_2xx)
}

/// wrk's latency (`812.00us`, `1.20ms`, `1.01s`) in milliseconds.
fn millis(text: &str) -> f64 {
    let number = |suffix: &str| text.strip_suffix(suffix)?.parse::<f64>().ok();
    number("us")
        .map(|us| us / 1000.0)
        .or_else(|| number("ms"))
        .or_else(|| number("s").map(|s| s * 1000.0))
        .unwrap_or(f64::NAN)
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
    for run in 1..=setting("RUNS", "3").parse().unwrap_or(3) {
        let (url, token) = (url.clone(), token.clone());
        let (rps, p99, non_2xx) =
            actix_web::rt::task::spawn_blocking(move || wrk(&url, token.as_deref()))
                .await
                .expect("the wrk thread");
        println!("{label:<28} run {run}: {rps:>10.0} rps  p99 {p99:>7.2} ms  non-2xx {non_2xx}");
    }
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
