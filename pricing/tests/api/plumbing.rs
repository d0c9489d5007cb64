//! The plumbing every service shares (error bodies, health, request ids, CORS,
//! chaos, graceful shutdown), exercised once through the pricing service.

use std::time::Duration;

use actix_web::http::Method;
use shared_chaos::ChaosConfig;
use shared_http::cors::AllowedOrigins;

use crate::helpers::{spawn_app, spawn_app_with};

#[actix_web::test]
async fn unknown_path_is_a_404_problem() {
    let app = spawn_app().await;
    app.client
        .get("/nope")
        .await
        .assert_problem(404, "not_found");
}

#[actix_web::test]
async fn wrong_method_is_a_405_problem() {
    let app = spawn_app().await;
    let res = app.client.delete("/price/A001").await;
    res.assert_problem(405, "method_not_allowed");
    let res = app
        .client
        .send(Method::TRACE, "/price/bulk", &[], None)
        .await;
    res.assert_problem(405, "method_not_allowed");
}

#[actix_web::test]
async fn malformed_json_is_a_400_problem() {
    let app = spawn_app().await;
    let res = app
        .client
        .post_raw("/price/bulk", "application/json", b"{\"skus\": [".to_vec())
        .await;
    res.assert_problem(400, "malformed_json");
}

#[actix_web::test]
async fn wrong_content_type_is_a_415_problem() {
    let app = spawn_app().await;
    let res = app
        .client
        .post_raw(
            "/price/bulk",
            "text/plain",
            b"{\"skus\": [\"A001\"]}".to_vec(),
        )
        .await;
    res.assert_problem(415, "unsupported_media_type");
}

#[actix_web::test]
async fn oversized_body_is_a_413_problem() {
    let app = spawn_app().await;
    let huge = format!("{{\"skus\": [\"{}\"]}}", "A".repeat(100 * 1024));
    let res = app
        .client
        .post_raw("/price/bulk", "application/json", huge)
        .await;
    res.assert_problem(413, "payload_too_large");
}

#[actix_web::test]
async fn health_endpoints_answer() {
    let app = spawn_app().await;
    let res = app.client.get("/health").await;
    res.assert_status(200);
    assert_eq!(res.body["service"], "pricing");
    assert_eq!(res.body["status"], "ok");
    assert!(res.body["version"].is_string());
    app.client.get("/health/live").await.assert_status(200);
    let ready = app.client.get("/health/ready").await;
    ready.assert_status(200);
    assert_eq!(ready.body["status"], "ready");
}

#[actix_web::test]
async fn request_id_is_echoed_or_generated_and_appears_in_problems() {
    let app = spawn_app().await;
    let res = app
        .client
        .send(
            Method::GET,
            "/price/Z999",
            &[("x-request-id", "test-id-42")],
            None,
        )
        .await;
    assert_eq!(res.header("x-request-id").as_deref(), Some("test-id-42"));
    assert_eq!(res.body["request_id"], "test-id-42");

    let res = app.client.get("/price/A001").await;
    let generated = res.header("x-request-id").expect("generated id");
    assert_eq!(generated.len(), 36, "a UUID: {generated}");

    let res = app
        .client
        .send(
            Method::GET,
            "/price/A001",
            &[("x-request-id", "bad id with spaces")],
            None,
        )
        .await;
    assert_ne!(
        res.header("x-request-id").as_deref(),
        Some("bad id with spaces")
    );
}

#[actix_web::test]
async fn cors_preflight_is_answered_for_allowed_origins_only() {
    let app = spawn_app_with(|c| {
        c.server.allowed_origins = AllowedOrigins::List(vec!["http://shop.test".into()]);
    })
    .await;
    let preflight = |origin: &'static str| {
        let client = app.client.clone();
        async move {
            client
                .send(
                    Method::OPTIONS,
                    "/price/bulk",
                    &[
                        ("origin", origin),
                        ("access-control-request-method", "POST"),
                        ("access-control-request-headers", "content-type"),
                    ],
                    None,
                )
                .await
        }
    };
    let ok = preflight("http://shop.test").await;
    assert!(ok.status.is_success(), "{}", ok.status);
    assert_eq!(
        ok.header("access-control-allow-origin").as_deref(),
        Some("http://shop.test")
    );
    let denied = preflight("http://evil.test").await;
    assert!(denied.header("access-control-allow-origin").is_none());

    let res = app
        .client
        .send(
            Method::GET,
            "/price/A001",
            &[("origin", "http://shop.test")],
            None,
        )
        .await;
    assert_eq!(
        res.header("access-control-allow-origin").as_deref(),
        Some("http://shop.test")
    );
    let exposed = res
        .header("access-control-expose-headers")
        .unwrap_or_default();
    assert!(exposed.to_lowercase().contains("x-request-id"), "{exposed}");
}

#[actix_web::test]
async fn chaos_fails_requests_but_never_health() {
    let app = spawn_app_with(|c| {
        c.server.chaos = ChaosConfig {
            failure_rate: 1.0,
            ..ChaosConfig::off()
        };
    })
    .await;
    let res = app.client.get("/price/A001").await;
    assert!(res.status.is_server_error(), "{}", res.status);
    assert_eq!(res.body["code"], "chaos_injected");
    app.client.get("/health").await.assert_status(200);
    app.client.get("/health/ready").await.assert_status(200);
}

#[actix_web::test]
async fn chaos_delays_requests_by_the_configured_time() {
    let app = spawn_app_with(|c| {
        c.server.chaos = shared_testkit::slow(Duration::from_millis(200));
    })
    .await;
    let started = std::time::Instant::now();
    app.client.get("/price/A001").await.assert_status(200);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[actix_web::test]
async fn shutdown_turns_readiness_off_and_lets_in_flight_requests_finish() {
    let app = spawn_app_with(|c| {
        // Every business request takes 300 ms, so one is in flight when the drain starts.
        c.server.chaos = shared_testkit::slow(Duration::from_millis(300));
    })
    .await;
    let client = app.client.clone();
    let in_flight = actix_web::rt::spawn(async move { client.get("/price/A001").await });
    let shutdown = app.shutdown.clone();
    let stopping =
        actix_web::rt::spawn(async move { shutdown.shutdown(Duration::from_millis(500)).await });

    app.client
        .get("/health/ready")
        .await
        .assert_problem(503, "draining");
    assert_eq!(app.client.get("/health").await.body["status"], "draining");
    let finished = in_flight.await.expect("request task");
    finished.assert_status(200);
    stopping.await.expect("shutdown task");
    app.task
        .await
        .expect("server task")
        .expect("server exits cleanly");
}

#[actix_web::test]
async fn the_healthcheck_probe_follows_readiness() {
    let app = spawn_app().await;
    let port = app.port;
    // The probe is blocking I/O, as in the real subcommand: keep it off the runtime.
    let probe =
        move || actix_web::rt::task::spawn_blocking(move || shared_http::healthcheck::probe(port));
    assert!(probe().await.expect("probe task").is_ok());
    app.shutdown.lifecycle().start_draining();
    assert!(
        probe().await.expect("probe task").is_err(),
        "draining is not ready"
    );
}
