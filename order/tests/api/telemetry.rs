//! Request ids in the logs of every service a request touches, and
//! distributed tracing when it is configured.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use shared_testkit::{TestClient, TestDatabase, captured_logs, eventually};

use crate::helpers::{order_body, spawn_stack};

#[actix_web::test]
async fn the_request_id_reaches_inventorys_log_lines_for_the_downstream_calls() {
    let stack = spawn_stack().await;
    let id = format!("trace-me-{}", uuid::Uuid::new_v4());
    let res = stack
        .order
        .client
        .send(
            actix_web::http::Method::POST,
            "/orders",
            &[("content-type", "application/json"), ("x-request-id", &id)],
            Some(order_body("c1", &[("A001", 1)]).to_string().into_bytes()),
        )
        .await;
    res.assert_status(201);
    assert_eq!(res.header("x-request-id").as_deref(), Some(id.as_str()));

    let lines = captured_logs();
    let of = |service: &str| {
        lines
            .iter()
            .filter(|l| l["span"]["request_id"] == id.as_str() && l["span"]["service"] == service)
            .collect::<Vec<_>>()
    };
    let inventory = of("inventory");
    let paths: Vec<&str> = inventory
        .iter()
        .filter_map(|l| l["span"]["path"].as_str())
        .collect();
    assert!(
        paths.contains(&"/reservations"),
        "inventory lines: {inventory:?}"
    );
    assert!(paths.contains(&"/reservation-confirmations"), "{paths:?}");
    let access = inventory
        .iter()
        .find(|l| l["message"] == "request completed")
        .expect("an access line");
    assert!(access["latency_ms"].is_number(), "{access}");
    assert!(access["span"]["method"].is_string() && access["status"].is_number());
    assert!(
        !of("pricing").is_empty(),
        "pricing logged the request id too"
    );
    assert!(!of("order").is_empty());
}

/// A stand-in for an OTLP collector and a pricing service that both record
/// what reaches them.
#[derive(Default)]
struct Seen {
    exports: Mutex<Vec<(String, usize)>>,
    traceparents: Mutex<Vec<String>>,
}

async fn collect(seen: web::Data<Arc<Seen>>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    seen.exports
        .lock()
        .expect("lock")
        .push((content_type, body.len()));
    HttpResponse::Ok().finish()
}

async fn fake_pricing(seen: web::Data<Arc<Seen>>, req: HttpRequest) -> HttpResponse {
    if let Some(tp) = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
    {
        seen.traceparents.lock().expect("lock").push(tp.to_owned());
    }
    HttpResponse::ServiceUnavailable().finish()
}

#[actix_web::test]
async fn with_an_otlp_endpoint_spans_are_exported_and_traceparent_is_propagated() {
    let stack = spawn_stack().await;
    let seen = Arc::new(Seen::default());
    let data = web::Data::new(seen.clone());
    let fakes = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/v1/traces", web::post().to(collect))
            .route("/price/bulk", web::post().to(fake_pricing))
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .expect("bind");
    let fake_port = fakes.addrs()[0].port();
    actix_web::rt::spawn(fakes.run());

    let db = TestDatabase::create("order").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let inventory_url = format!(
        "http://127.0.0.1:{}",
        stack.inventory.as_ref().expect("up").port
    );
    let mut process = Command::new(env!("CARGO_BIN_EXE_order"))
        .env_clear()
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("DATABASE_URL", &db.config.url)
        .env("INVENTORY_URL", inventory_url)
        .env("PRICING_URL", format!("http://127.0.0.1:{fake_port}"))
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{fake_port}"),
        )
        .env("SHUTDOWN_DRAIN_MS", "0")
        // The fake pricing answers 503: one attempt, so one traceparent to read.
        .env("RETRY_MAX_ATTEMPTS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("order binary starts");

    let client = TestClient::new(port);
    eventually(
        "the order binary to be ready",
        Duration::from_secs(10),
        async || {
            awc::Client::new()
                .get(format!("http://127.0.0.1:{port}/health/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        },
    )
    .await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let res = client
        .send(
            actix_web::http::Method::POST,
            "/orders",
            &[
                ("content-type", "application/json"),
                ("traceparent", &format!("00-{trace_id}-00f067aa0ba902b7-01")),
            ],
            Some(order_body("c1", &[("A002", 1)]).to_string().into_bytes()),
        )
        .await;
    res.assert_status(201);

    let traceparents = seen.traceparents.lock().expect("lock").clone();
    assert_eq!(traceparents.len(), 1, "{traceparents:?}");
    let parts: Vec<&str> = traceparents[0].split('-').collect();
    assert_eq!(
        parts[1], trace_id,
        "the downstream call continues the caller's trace"
    );
    assert_ne!(parts[2], "00f067aa0ba902b7", "with a span of its own");

    // SIGTERM: the process drains and flushes its spans before exiting.
    let status = Command::new("kill")
        .args(["-TERM", &process.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    assert!(process.wait().expect("exits").success());
    let exports = seen.exports.lock().expect("lock").clone();
    assert!(!exports.is_empty(), "no spans were exported");
    assert!(
        exports
            .iter()
            .all(|(ct, len)| ct == "application/x-protobuf" && *len > 0),
        "{exports:?}"
    );
}
