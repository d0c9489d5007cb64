//! Password hashing is bounded: a flood of anonymous sign-ups gets 503 `busy`
//! with `Retry-After` beyond the bound, and the service keeps answering.

use std::time::Duration;

use futures::StreamExt;
use identity::hashing::HashingSettings;
use serde_json::json;

use crate::helpers::{PASSWORD, spawn_app_with};

const IN_FLIGHT: &str = "identity_password_hashes_in_flight";
const REFUSED: &str = "identity_password_hashes_refused_total";

#[actix_web::test]
async fn a_flood_of_sign_ups_beyond_the_bound_gets_503_busy_and_health_keeps_answering() {
    let app = spawn_app_with(|c| {
        c.hashing = HashingSettings {
            max_in_flight: 1,
            queue_wait: Duration::ZERO,
        };
    })
    .await;
    let client = app.client();
    let bodies: Vec<_> = (0..30)
        .map(|i| json!({"email": format!("flood{i}@example.com"), "password": PASSWORD, "name": "F"}))
        .collect();
    let mut flood: futures::stream::FuturesUnordered<_> = bodies
        .iter()
        .map(|body| client.post_json("/accounts", body))
        .collect();
    let (mut created, mut busy) = (0, 0);
    while let Some(res) = flood.next().await {
        // Between answers: the service answers, and never hashes more than the bound.
        client.get("/health").await.assert_status(200);
        assert!(app.metric(IN_FLIGHT).await <= 1.0);
        match res.status.as_u16() {
            201 => created += 1,
            _ => {
                res.assert_problem(503, "busy");
                assert_eq!(res.header("retry-after").as_deref(), Some("1"));
                busy += 1;
            }
        }
    }
    assert!(created >= 1 && busy >= 1, "{created} created, {busy} busy");
    assert_eq!(app.metric(REFUSED).await, f64::from(busy));
    // Nothing is left running, and the next sign-up is served.
    assert_eq!(app.metric(IN_FLIGHT).await, 0.0);
    app.sign_up("after@example.com", PASSWORD)
        .await
        .assert_status(201);
}
