//! `X-Request-Timeout-Ms`: work not started before the caller's deadline is not started.

use std::time::Duration;

use actix_web::http::Method;
use serde_json::json;
use shared_testkit::TestResponse;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

async fn reserve_within(app: &TestApp, timeout: &str, id: &str) -> TestResponse {
    let body = json!({"reservation_id": id, "lines": [{"sku": "A001", "quantity": 5}]});
    app.server
        .client
        .send(
            Method::POST,
            "/reservations",
            &[
                ("content-type", "application/json"),
                ("x-request-timeout-ms", timeout),
            ],
            Some(body.to_string().into_bytes()),
        )
        .await
}

#[actix_web::test]
async fn an_expired_request_timeout_reserves_nothing_and_answers_504() {
    let app = spawn_app().await;
    let res = reserve_within(&app, "0", "late-1").await;
    res.assert_problem(504, "deadline_exceeded");
    assert_eq!(app.stock("A001").await, 50);
    app.get("/reservations/late-1")
        .await
        .assert_problem(404, "reservation_not_found");
}

#[actix_web::test]
async fn a_request_held_by_chaos_past_its_deadline_is_not_served() {
    let app = spawn_app_with(|c| {
        c.server.chaos = shared_testkit::slow(Duration::from_millis(300));
    })
    .await;
    // 50 ms left when it arrives; the injected delay alone takes 300 ms.
    let res = reserve_within(&app, "50", "late-2").await;
    res.assert_problem(504, "deadline_exceeded");
    assert_eq!(app.stock("A001").await, 50, "no stock was taken");
    app.get("/reservations/late-2")
        .await
        .assert_problem(404, "reservation_not_found");
    // The same request with time to spare is served.
    reserve_within(&app, "5000", "late-2")
        .await
        .assert_status(201);
    assert_eq!(app.stock("A001").await, 45);
}

#[actix_web::test]
async fn a_request_timeout_that_is_not_whole_milliseconds_is_400() {
    let app = spawn_app().await;
    for bad in ["-5", "1.5", "soon", ""] {
        let res = reserve_within(&app, bad, "bad-1").await;
        res.assert_problem(400, "invalid_request_timeout");
    }
    assert_eq!(app.stock("A001").await, 50);
    // Probes carry no deadlines: the header is not even read there.
    let probe = app
        .server
        .client
        .send(
            Method::GET,
            "/health/live",
            &[("x-request-timeout-ms", "0")],
            None,
        )
        .await;
    probe.assert_status(200);
}
