//! Order over several replicas of inventory (`INVENTORY_URL` as a list):
//! calls spread over them, a sick one is ejected, a retry goes elsewhere.
//! The replicas share one database (one file on the SQLite pass), so they
//! share stock.

use std::time::Duration;

use serde_json::{Value, json};
use shared_resilience::balancer::Strategy;
use shared_testkit::{Spawned, TestClient, eventually};

use crate::helpers::{Stack, metric, order_body, spawn_stack};

fn url(replica: &Spawned) -> String {
    format!("http://127.0.0.1:{}", replica.port)
}

/// Places `n` orders of one A005 each (300 in stock), ten at a time;
/// returns how many were placed.
async fn place(order: &TestClient, n: usize) -> usize {
    let mut placed = 0;
    for round in 0..n.div_ceil(10) {
        let orders = (0..10.min(n - round * 10)).map(|i| {
            let body = order_body(&format!("c{round}-{i}"), &[("A005", 1)]);
            async move { order.post_json("/orders", &body).await }
        });
        for res in futures::future::join_all(orders).await {
            placed += usize::from(res.status == 201);
        }
    }
    placed
}

/// Inventory's endpoints as order's `/health` shows them.
async fn endpoints(order: &TestClient) -> Vec<Value> {
    let health = order.get("/health").await;
    health.body["checks"]["inventory"]["endpoints"]
        .as_array()
        .expect("endpoints listed")
        .clone()
}

async fn endpoint_metric(order: &TestClient, name: &str, endpoint: &str, more: &str) -> f64 {
    metric(
        order,
        &format!(r#"{name}{{dependency="inventory",endpoint="{endpoint}"{more}}}"#),
    )
    .await
}

/// Attempts at inventory, all endpoints together, by outcome (the
/// dependency-wide series).
async fn inventory_calls(order: &TestClient, outcome: &str) -> f64 {
    metric(
        order,
        &format!(r#"dependency_calls_total{{dependency="inventory",outcome="{outcome}"}}"#),
    )
    .await
}

/// Another order over the endpoints `all`, which it calls in turn.
async fn taking_turns(stack: &Stack, all: &[String]) -> Spawned {
    stack
        .order_replica_with(|c| {
            c.inventory_url = all.join(",");
            c.calls.balancing.strategy = Strategy::RoundRobin;
        })
        .await
}

async fn primary(stack: &Stack) -> String {
    url(stack.inventory.as_ref().expect("inventory is up"))
}

#[actix_web::test]
async fn a_replica_failing_half_its_calls_is_ejected_and_orders_go_through() {
    let stack = spawn_stack().await;
    let healthy = stack.inventory_replica().await;
    let sick = stack
        .inventory_replica_with(|c| c.server.chaos_control = shared_config::Switch::On)
        .await;
    sick.client
        .put_json("/admin/chaos", &json!({"failure_rate": 0.5}))
        .await
        .assert_status(200);
    let sick_url = url(&sick);
    let all = [primary(&stack).await, url(&healthy), sick_url.clone()];
    let order = stack
        .order_replica_with(|c| {
            c.inventory_url = all.join(",");
            // Each endpoint's breaker opens later than ejection comes (the
            // stack's threshold is 3): what this test watches is the ejection.
            c.breaker.failure_threshold = 10;
        })
        .await;
    let client = &order.client;

    let placed = place(client, 200).await;
    assert!(placed >= 198, "{placed} of 200 orders placed");

    let listed = endpoints(client).await;
    let states: Vec<(&str, &str)> = listed
        .iter()
        .map(|e| {
            (
                e["url"].as_str().expect("url"),
                e["state"].as_str().expect("state"),
            )
        })
        .collect();
    let expected: Vec<(&str, &str)> = all
        .iter()
        .map(|u| {
            (
                u.as_str(),
                if *u == sick_url { "ejected" } else { "active" },
            )
        })
        .collect();
    assert_eq!(states, expected);
    let ejections = "dependency_endpoint_ejections_total";
    assert_eq!(endpoint_metric(client, ejections, &sick_url, "").await, 1.0);
    for healthy in &all[..2] {
        assert_eq!(endpoint_metric(client, ejections, healthy, "").await, 0.0);
    }
    let sick_failures = endpoint_metric(
        client,
        "dependency_endpoint_calls_total",
        &sick_url,
        r#",outcome="server_error""#,
    )
    .await;
    assert!(sick_failures >= 1.0, "{sick_failures}");
}

#[actix_web::test]
async fn round_robin_spreads_the_calls_and_each_endpoint_counts_its_own() {
    let stack = spawn_stack().await;
    let other = stack.inventory_replica().await;
    let all = [primary(&stack).await, url(&other)];
    let order = taking_turns(&stack, &all).await;
    let client = &order.client;
    // One at a time, so that the turns alternate exactly.
    for i in 0..10 {
        let res = client
            .post_json("/orders", &order_body(&format!("c{i}"), &[("A005", 1)]))
            .await;
        res.assert_status(201);
    }
    let calls = "dependency_endpoint_calls_total";
    let success = r#",outcome="success""#;
    let a = endpoint_metric(client, calls, &all[0], success).await;
    let b = endpoint_metric(client, calls, &all[1], success).await;
    assert!(a >= 5.0 && (a - b).abs() <= 1.0, "{a} {b}");
    // Every attempt is counted once per endpoint and once for the dependency.
    assert_eq!(a + b, inventory_calls(client, "success").await);
    for endpoint in &all {
        let ewma = endpoint_metric(
            client,
            "dependency_endpoint_latency_ewma_seconds",
            endpoint,
            "",
        )
        .await;
        assert!(ewma > 0.0, "{endpoint}: {ewma}");
    }
}

#[actix_web::test]
async fn a_retry_goes_to_another_endpoint_and_a_dead_one_is_ejected() {
    let stack = spawn_stack().await;
    let mut dead = stack.inventory_replica().await;
    let dead_url = url(&dead);
    dead.stop().await;
    let all = [dead_url.clone(), primary(&stack).await];
    let order = stack
        .order_replica_with(|c| {
            c.inventory_url = all.join(",");
            c.calls.balancing.strategy = Strategy::RoundRobin;
            c.breaker.failure_threshold = 10;
        })
        .await;
    let client = &order.client;
    // Every call the dead endpoint gets fails on the way and is retried at
    // the live one: no order fails, and five failures in a row eject it.
    assert_eq!(place(client, 20).await, 20);
    let transport = endpoint_metric(
        client,
        "dependency_endpoint_calls_total",
        &dead_url,
        r#",outcome="transport""#,
    )
    .await;
    // Five in a row eject it; calls already on their way there as the fifth
    // failed (ten orders are placed at a time) fail there too.
    assert!((5.0..=10.0).contains(&transport), "{transport}");
    let listed = endpoints(client).await;
    assert_eq!(listed[0]["state"], "ejected", "{listed:?}");
    assert_eq!(listed[1]["state"], "active", "{listed:?}");
}

#[actix_web::test]
async fn a_dead_replica_started_again_at_its_address_is_back_in_rotation_within_seconds() {
    let stack = spawn_stack().await;
    let mut dead = stack.inventory_replica().await;
    let (dead_url, port) = (url(&dead), dead.port);
    dead.stop().await;
    let all = [dead_url.clone(), primary(&stack).await];
    let order = taking_turns(&stack, &all).await;
    let client = &order.client;
    assert_eq!(place(client, 20).await, 20);
    let out = |listed: &Value| listed["state"] == "ejected" || listed["breaker"] == "open";
    let listed = endpoints(client).await;
    assert!(out(&listed[0]), "{listed:?}");
    // Its ejection and its breaker's reset timeout (30 s each) are far off;
    // the readiness probe, every second, finds the new process.
    let _replacement = stack.inventory_replica_with(|c| c.server.port = port).await;
    let took = eventually("the endpoint back", Duration::from_secs(5), async || {
        !out(&endpoints(client).await[0])
    })
    .await;
    let success = r#",outcome="success""#;
    let calls = "dependency_endpoint_calls_total";
    let before = endpoint_metric(client, calls, &dead_url, success).await;
    let all_before = inventory_calls(client, "success").await;
    assert_eq!(place(client, 20).await, 20);
    let there = endpoint_metric(client, calls, &dead_url, success).await - before;
    let in_all = inventory_calls(client, "success").await - all_before;
    // Round robin: every other call once it is back, not none until its
    // ejection or its breaker's reset timeout ends.
    assert!(
        there >= 0.4 * in_all,
        "{there} of {in_all} calls went to the replacement ({took:?} after it started)"
    );
}

#[actix_web::test]
async fn p2c_sends_few_calls_to_a_slow_replica() {
    let stack = spawn_stack().await;
    let fast = stack.inventory_replica().await;
    let slow = stack
        .inventory_replica_with(|c| c.server.chaos_control = shared_config::Switch::On)
        .await;
    let every_call_late = json!({"delay_rate": 1, "delay_ms": {"min": 2000, "max": 2000}});
    slow.client
        .put_json("/admin/chaos", &every_call_late)
        .await
        .assert_status(200);
    let all = [primary(&stack).await, url(&fast), url(&slow)];
    let order = stack
        .order_replica_with(|c| {
            c.inventory_url = all.join(",");
            // Late, not failing: the slow replica's answers arrive in time.
            c.request_timeout = std::time::Duration::from_secs(3);
        })
        .await;
    let client = &order.client;
    assert_eq!(place(client, 60).await, 60);
    let calls = "dependency_endpoint_calls_total";
    let success = r#",outcome="success""#;
    let mut per_endpoint = Vec::new();
    for endpoint in &all {
        per_endpoint.push(endpoint_metric(client, calls, endpoint, success).await);
    }
    let total: f64 = per_endpoint.iter().sum();
    assert_eq!(total, inventory_calls(client, "success").await);
    // Round robin would give it a third; once its first answer is in, its
    // estimate (2 s) makes it the dearer of any two drawn.
    assert!(per_endpoint[2] * 5.0 < total, "{per_endpoint:?}");
}
