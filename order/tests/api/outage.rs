//! A database outage, as an operator meets one: the three services on a
//! PostgreSQL of the test's own, which the test stops and starts. While it
//! is down every request that needs it is a 503 `database_unavailable` with
//! `Retry-After` (never a 500), readiness fails and liveness does not; once
//! it is back the services serve again without a restart. PostgreSQL pass
//! only (`TEST_DATABASE_URL`): PostgreSQL is installed there.

use std::time::Duration;

use serde_json::json;
use shared_testkit::postgres::PostgresCluster;
use shared_testkit::{TestClient, TestResponse, eventually};

use crate::helpers::{Stack, metric, spawn_stack_with};

const UNAVAILABLE: &str = r#"http_problems_total{code="database_unavailable"}"#;

fn on_postgres() -> bool {
    let on = std::env::var("TEST_DATABASE_URL").is_ok_and(|url| !url.is_empty());
    if !on {
        eprintln!("skipped: needs PostgreSQL (the PostgreSQL pass, TEST_DATABASE_URL)");
    }
    on
}

/// The stack with each service's database on `cluster`.
async fn stack_on(cluster: &PostgresCluster) -> Stack {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let inventory = cluster
        .create_database(&format!("inventory_{suffix}"))
        .await;
    let pricing = cluster.create_database(&format!("pricing_{suffix}")).await;
    let order = cluster.create_database(&format!("order_{suffix}")).await;
    spawn_stack_with(move |config| {
        config.inventory.database.url = inventory;
        config.pricing.database.url = pricing;
        config.order.database.url = order;
    })
    .await
}

/// Asserts the answer of a request that met the outage.
fn assert_database_unavailable(res: &TestResponse, what: &str) {
    assert_eq!(res.status.as_u16(), 503, "{what}: {}", res.text);
    res.assert_problem(503, "database_unavailable");
    let after: u64 = res
        .header("retry-after")
        .unwrap_or_else(|| panic!("{what}: no Retry-After"))
        .parse()
        .expect("whole seconds");
    assert!((1..=2).contains(&after), "{what}: Retry-After {after}");
}

/// Each service's reads and writes while the database is down: one request
/// each, `(client, method, path, body)`.
fn requests_during_outage(
    stack: &Stack,
    order_id: &str,
) -> Vec<(TestClient, &'static str, String, Option<serde_json::Value>)> {
    let inventory = stack.inventory_client.clone();
    let pricing = stack.pricing.as_ref().expect("pricing").client.clone();
    let order = stack.order.client.clone();
    vec![
        // Never read before: no cache can answer it.
        (inventory.clone(), "GET", "/items/B002".into(), None),
        (inventory.clone(), "GET", "/items".into(), None),
        (
            inventory,
            "POST",
            "/items/B001/stock".into(),
            Some(json!({"delta": 5, "reason": "restock"})),
        ),
        (pricing.clone(), "GET", "/price/C001".into(), None),
        (
            pricing,
            "PUT",
            "/price/A002".into(),
            Some(json!({"base_price": 10.0, "discount_percent": 0, "tiers": []})),
        ),
        (order.clone(), "GET", format!("/orders/{order_id}"), None),
        (
            order,
            "POST",
            "/orders".into(),
            Some(crate::helpers::order_body("c1", &[("A001", 1)])),
        ),
    ]
}

async fn send(
    client: &TestClient,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> TestResponse {
    let method = actix_web::http::Method::from_bytes(method.as_bytes()).expect("method");
    let headers: &[(&str, &str)] = match body {
        Some(_) => &[("content-type", "application/json")],
        None => &[],
    };
    client
        .send(
            method,
            path,
            headers,
            body.map(|b| b.to_string().into_bytes()),
        )
        .await
}

#[actix_web::test]
async fn a_stopped_database_is_a_503_with_retry_after_and_the_services_serve_again_once_it_is_back()
{
    if !on_postgres() {
        return;
    }
    let cluster = PostgresCluster::start().await;
    let stack = stack_on(&cluster).await;
    let placed = stack.place("c1", &[("A001", 1)]).await;
    placed.assert_status(201);
    let order_id = placed.body["order_id"].as_str().expect("id").to_owned();
    let clients = [
        stack.inventory_client.clone(),
        stack.pricing.as_ref().expect("pricing").client.clone(),
        stack.order.client.clone(),
    ];
    let mut before = Vec::new();
    for client in &clients {
        before.push(metric(client, UNAVAILABLE).await);
    }

    cluster.stop().await;
    let requests = requests_during_outage(&stack, &order_id);
    for (client, method, path, body) in &requests {
        let res = send(client, method, path, body.as_ref()).await;
        assert_database_unavailable(&res, &format!("{method} {path}"));
    }
    for client in &clients {
        client
            .get("/health/ready")
            .await
            .assert_problem(503, "not_ready");
        client.get("/health/live").await.assert_status(200);
    }
    // Counted where it was answered: 3 inventory, 2 pricing, 2 order.
    for (client, (before, caused)) in clients.iter().zip(before.into_iter().zip([3.0, 2.0, 2.0])) {
        assert_eq!(metric(client, UNAVAILABLE).await, before + caused);
    }

    cluster.resume().await;
    let recovered = eventually(
        "the services to serve again",
        Duration::from_secs(10),
        async || {
            let mut all_ok = true;
            for (client, method, path, body) in &requests {
                let res = send(client, method, path, body.as_ref()).await;
                assert_ne!(res.status.as_u16(), 500, "{method} {path}: {}", res.text);
                all_ok &= res.status.is_success();
            }
            all_ok
        },
    )
    .await;
    eprintln!("outage: served again {recovered:?} after the database was back");
    for client in &clients {
        client.get("/health/ready").await.assert_status(200);
    }
}
