//! Every metric the README documents, checked by the exact amount known
//! traffic moves it, on all three services at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;
use shared_testkit::TestClient;

use crate::helpers::{Stack, spawn_stack_with};

/// One scrape of a `/metrics` page: each series (name and labels) and its value.
struct Scrape(HashMap<String, f64>);

impl Scrape {
    async fn of(client: &TestClient) -> Self {
        let res = client.get("/metrics").await;
        res.assert_status(200);
        let series = res
            .text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect();
        Self(series)
    }

    fn value(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }
}

/// The three services' pages, scraped together.
struct Scrapes {
    order: Scrape,
    inventory: Scrape,
    pricing: Scrape,
}

impl Scrapes {
    async fn of(stack: &Stack) -> Self {
        let pricing = match &stack.pricing {
            Some(pricing) => Scrape::of(&pricing.client).await,
            None => Scrape(HashMap::new()),
        };
        Self {
            order: Scrape::of(&stack.order.client).await,
            inventory: Scrape::of(&stack.inventory_client).await,
            pricing,
        }
    }
}

/// Asserts that each series moved by exactly its amount between two scrapes.
fn assert_moved(before: &Scrape, after: &Scrape, expected: &[(&str, f64)]) {
    for (series, by) in expected {
        let moved = after.value(series) - before.value(series);
        assert_eq!(moved, *by, "{series} moved by {moved}, expected {by}");
    }
}

async fn wait_for_expiry(stack: &Stack, before: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Scrape::of(&stack.inventory_client)
        .await
        .value("reservations_expired_total")
        <= before
    {
        assert!(Instant::now() < deadline, "no reservation expired in time");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `name` of `dependency`'s one endpoint in `stack`, with `more` labels.
fn endpoint_series(stack: &Stack, name: &str, dependency: &str, more: &str) -> String {
    let config = stack.order_config();
    let url = match dependency {
        "inventory" => &config.inventory_url,
        _ => &config.pricing_url,
    };
    format!(r#"{name}{{dependency="{dependency}",endpoint="{url}"{more}}}"#)
}

/// [`assert_moved`] for series named at run time.
fn assert_moved_owned(before: &Scrape, after: &Scrape, expected: &[(String, f64)]) {
    let expected: Vec<(&str, f64)> = expected.iter().map(|(s, by)| (s.as_str(), *by)).collect();
    assert_moved(before, after, &expected);
}

/// Orders that go through, are refused, or replayed, with every service up:
/// the order, reservation and HTTP counters move by what was sent.
#[actix_web::test]
async fn every_documented_metric_moves_by_the_traffic_sent() {
    let mut stack = spawn_stack_with(|c| {
        c.order.breaker.failure_threshold = 2;
        c.inventory.reservation_ttl = Duration::from_millis(1500);
    })
    .await;
    let start = Scrapes::of(&stack).await;

    // Two live orders, one of them retried with its key; two refused ones.
    stack.place("c1", &[("A002", 1)]).await.assert_status(201);
    let keyed = crate::helpers::order_body("c1", &[("A002", 2)]);
    stack.place_with_key("k-1", &keyed).await.assert_status(201);
    stack.place_with_key("k-1", &keyed).await.assert_status(200);
    stack.place("c1", &[("B002", 1)]).await.assert_status(409);
    stack.place("c1", &[("Z999", 1)]).await.assert_status(422);

    // Inventory's own outcomes, straight from its API.
    let inventory = &stack.inventory_client;
    let hold = json!({"reservation_id": "m-1", "lines": [{"sku": "A001", "quantity": 1}]});
    inventory
        .post_json("/reservations", &hold)
        .await
        .assert_status(201);
    inventory
        .post_json("/reservations", &hold)
        .await
        .assert_status(200);
    inventory
        .delete("/reservations/m-1")
        .await
        .assert_status(204);
    let confirm = inventory
        .post_json("/reservations/m-1/confirm", &json!({}))
        .await;
    confirm.assert_status(409);
    let lapse = json!({"reservation_id": "m-2", "lines": [{"sku": "A001", "quantity": 1}]});
    inventory
        .post_json("/reservations", &lapse)
        .await
        .assert_status(201);
    wait_for_expiry(&stack, start.inventory.value("reservations_expired_total")).await;

    let up = Scrapes::of(&stack).await;
    assert_moved(
        &start.order,
        &up.order,
        &[
            (r#"orders_total{outcome="confirmed"}"#, 2.0),
            (r#"orders_total{outcome="rejected"}"#, 2.0),
            (r#"orders_total{outcome="pending_pricing"}"#, 0.0),
            (r#"orders_total{outcome="failed"}"#, 0.0),
            (r#"orders_by_pricing_total{source="live"}"#, 2.0),
            (r#"orders_by_pricing_total{source="fallback"}"#, 0.0),
            (
                r#"http_requests_total{method="POST",route="/orders",status="201"}"#,
                2.0,
            ),
            (
                r#"http_requests_total{method="POST",route="/orders",status="200"}"#,
                1.0,
            ),
            (
                r#"http_requests_total{method="POST",route="/orders",status="409"}"#,
                1.0,
            ),
            (
                r#"http_requests_total{method="POST",route="/orders",status="422"}"#,
                1.0,
            ),
            (
                r#"http_request_duration_seconds_count{method="POST",route="/orders"}"#,
                5.0,
            ),
            // reserve + confirm for each placed order; a refused reserve is a 4xx.
            (
                r#"dependency_calls_total{dependency="inventory",outcome="success"}"#,
                4.0,
            ),
            (
                r#"dependency_calls_total{dependency="inventory",outcome="client_error"}"#,
                2.0,
            ),
            (
                r#"dependency_calls_total{dependency="pricing",outcome="success"}"#,
                2.0,
            ),
            (
                r#"dependency_call_duration_seconds_count{dependency="inventory"}"#,
                6.0,
            ),
            (
                r#"dependency_call_duration_seconds_count{dependency="pricing"}"#,
                2.0,
            ),
            // One at a time, each order's confirm went alone.
            ("order_confirm_batch_size_count", 2.0),
            ("order_confirm_batch_size_sum", 2.0),
            (r#"order_confirm_batch_size_bucket{le="1.0"}"#, 2.0),
            // Inventory serves the batch confirm: no order went one at a
            // time (mixed_versions.rs moves it with an inventory that does not).
            ("order_single_confirms_total", 0.0),
        ],
    );
    // The same attempts, per endpoint (one per dependency here).
    let calls = "dependency_endpoint_calls_total";
    let ewma = "dependency_endpoint_latency_ewma_seconds";
    assert_moved_owned(
        &start.order,
        &up.order,
        &[
            (
                endpoint_series(&stack, calls, "inventory", r#",outcome="success""#),
                4.0,
            ),
            (
                endpoint_series(&stack, calls, "inventory", r#",outcome="client_error""#),
                2.0,
            ),
            (
                endpoint_series(&stack, calls, "pricing", r#",outcome="success""#),
                2.0,
            ),
        ],
    );
    for dependency in ["inventory", "pricing"] {
        let estimate = up
            .order
            .value(&endpoint_series(&stack, ewma, dependency, ""));
        assert!(estimate > 0.0, "{dependency}: {estimate}");
    }
    assert_moved(
        &start.inventory,
        &up.inventory,
        &[
            (r#"reservations_total{outcome="reserved"}"#, 4.0),
            (r#"reservations_total{outcome="replayed"}"#, 1.0),
            (r#"reservations_total{outcome="insufficient_stock"}"#, 1.0),
            (r#"reservations_total{outcome="unknown_sku"}"#, 1.0),
            (r#"reservations_total{outcome="confirmed"}"#, 2.0),
            (r#"reservations_total{outcome="too_late"}"#, 1.0),
            (r#"reservations_total{outcome="released"}"#, 1.0),
            ("reservations_expired_total", 1.0),
            (
                r#"http_requests_total{method="POST",route="/reservations",status="201"}"#,
                4.0,
            ),
            (
                r#"http_requests_total{method="DELETE",route="/reservations/{id}",status="204"}"#,
                1.0,
            ),
        ],
    );
    assert_moved(
        &start.pricing,
        &up.pricing,
        &[
            (
                r#"http_requests_total{method="POST",route="/price/bulk",status="200"}"#,
                2.0,
            ),
            (
                r#"http_request_duration_seconds_count{method="POST",route="/price/bulk"}"#,
                2.0,
            ),
        ],
    );

    degraded_dependencies_move_breakers_and_fallbacks(&mut stack, &up).await;
}

/// Pricing down, then inventory down: the breakers, fallback pricing and the
/// failed outcome move by what was sent.
async fn degraded_dependencies_move_breakers_and_fallbacks(stack: &mut Stack, up: &Scrapes) {
    stack.stop_pricing().await;
    // Two quotes fail (the breaker opens at 2), the third never leaves.
    stack.place("c2", &[("A002", 1)]).await.assert_status(201);
    stack.place("c2", &[("C001", 1)]).await.assert_status(201);
    stack.place("c2", &[("A002", 1)]).await.assert_status(201);
    stack.stop_inventory().await;
    stack.place("c2", &[("A002", 1)]).await.assert_status(503);

    let down = Scrape::of(&stack.order.client).await;
    // Per endpoint: the same six failed attempts; the only endpoint is never ejected.
    let calls = "dependency_endpoint_calls_total";
    let ejections = "dependency_endpoint_ejections_total";
    assert_moved_owned(
        &up.order,
        &down,
        &[
            (
                endpoint_series(stack, calls, "pricing", r#",outcome="transport""#),
                6.0,
            ),
            (
                endpoint_series(stack, calls, "inventory", r#",outcome="transport""#),
                6.0,
            ),
            (endpoint_series(stack, ejections, "pricing", ""), 0.0),
            (endpoint_series(stack, ejections, "inventory", ""), 0.0),
        ],
    );
    assert_moved(
        &up.order,
        &down,
        &[
            (r#"orders_total{outcome="confirmed"}"#, 2.0),
            (r#"orders_total{outcome="pending_pricing"}"#, 1.0),
            (r#"orders_total{outcome="failed"}"#, 1.0),
            (r#"orders_total{outcome="rejected"}"#, 0.0),
            (r#"orders_by_pricing_total{source="fallback"}"#, 3.0),
            (r#"orders_by_pricing_total{source="live"}"#, 0.0),
            (
                r#"http_requests_total{method="POST",route="/orders",status="201"}"#,
                3.0,
            ),
            (
                r#"http_requests_total{method="POST",route="/orders",status="503"}"#,
                1.0,
            ),
            (
                r#"circuit_breaker_state{dependency="pricing",state="open"}"#,
                1.0,
            ),
            (
                r#"circuit_breaker_state{dependency="pricing",state="closed"}"#,
                -1.0,
            ),
            (
                r#"circuit_breaker_transitions_total{dependency="pricing",from="closed",to="open"}"#,
                1.0,
            ),
            (
                r#"circuit_breaker_rejected_calls_total{dependency="pricing"}"#,
                1.0,
            ),
            // Each of the two failing quotes is three attempts (RETRY_MAX_ATTEMPTS),
            // and one outcome for the breaker.
            (
                r#"dependency_calls_total{dependency="pricing",outcome="transport"}"#,
                6.0,
            ),
            (
                r#"dependency_retries_total{dependency="pricing",outcome="failure"}"#,
                4.0,
            ),
            (
                r#"dependency_retries_total{dependency="pricing",outcome="success"}"#,
                0.0,
            ),
            (
                r#"dependency_calls_total{dependency="pricing",outcome="rejected"}"#,
                1.0,
            ),
            (
                r#"dependency_call_duration_seconds_count{dependency="pricing"}"#,
                6.0,
            ),
            // The failed order's reserve and its compensating release both fail
            // (three attempts each), which opens inventory's breaker too.
            (
                r#"dependency_calls_total{dependency="inventory",outcome="transport"}"#,
                6.0,
            ),
            (
                r#"retry_budget_exhausted_total{dependency="inventory"}"#,
                0.0,
            ),
            (
                r#"dependency_calls_total{dependency="inventory",outcome="success"}"#,
                6.0,
            ),
            (
                r#"circuit_breaker_transitions_total{dependency="inventory",from="closed",to="open"}"#,
                1.0,
            ),
            (
                r#"circuit_breaker_state{dependency="inventory",state="open"}"#,
                1.0,
            ),
        ],
    );
}
