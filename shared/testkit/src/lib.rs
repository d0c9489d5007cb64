//! Helpers for the integration tests of the services and the shared crates.
//!
//! Tests talk to a real server on a real socket through [`TestClient`], and
//! check error bodies with [`TestResponse::assert_problem`]; [`openapi`] checks a
//! service's API description against the service.
//!
//! Owns: port-0 start-up, the test client and problem asserts, captured
//! logs, [`eventually`] (the one polling helper for every test), the
//! OpenID test issuer, a nats-server and a PostgreSQL cluster per test, wrk,
//! the OpenAPI checks, and the checks of published events against the event
//! catalogue.
//! Only tests depend on it: no service binary links it.

use std::sync::Once;
use std::time::Duration;

use actix_web::http::Method;
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use serde_json::Value;

use shared_chaos::ChaosConfig;
use shared_http::telemetry::LogFormat;

pub mod asyncapi;
pub mod issuer;
pub mod nats;
pub mod nats_cluster;
pub mod openapi;
pub mod postgres;
pub mod wrk;

/// Every log line of the test process, as JSON objects (see [`captured_logs`]).
static CAPTURED: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

/// Appends formatted log lines to [`CAPTURED`].
#[derive(Clone, Copy)]
struct Capture;

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs, once per test process, a subscriber that keeps every log line
/// (info and up) in memory as JSON, so that tests can assert on logs; with
/// `TEST_LOG` set the lines also go to the test output as text.
pub fn init_tracing() {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let capture = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(|| Capture)
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
            .boxed();
        let mut layers = vec![capture];
        if std::env::var_os("TEST_LOG").is_some() {
            layers.push(
                shared_http::telemetry::fmt_layer(LogFormat::Text)
                    .with_filter(tracing_subscriber::EnvFilter::new("info"))
                    .boxed(),
            );
        }
        let _ = tracing_subscriber::registry().with(layers).try_init();
    });
}

/// The log lines captured so far, parsed (see [`init_tracing`]).
pub fn captured_logs() -> Vec<Value> {
    let bytes = CAPTURED.lock().unwrap_or_else(|e| e.into_inner()).clone();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Chaos that holds every request back by `by`: a slow service.
pub fn slow(by: Duration) -> ChaosConfig {
    ChaosConfig {
        delay_rate: 1.0,
        delay: (by, by),
        failure_rate: 0.0,
    }
}

/// An HTTP client bound to one server's base URL.
#[derive(Clone)]
pub struct TestClient {
    pub base: String,
    client: awc::Client,
}

/// A fully read response.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body parsed as JSON, `Null` when empty or not JSON.
    pub body: Value,
    pub text: String,
}

impl TestResponse {
    /// Asserts a problem+json body with this status and code.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) -> &Self {
        assert_eq!(self.status.as_u16(), status, "status; body: {}", self.text);
        let content_type = self.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with(shared_http::problem::CONTENT_TYPE),
            "content type {content_type:?}, body: {}",
            self.text
        );
        assert_eq!(self.body["code"], code, "code; body: {}", self.text);
        assert_eq!(
            self.body["status"], status,
            "status member; body: {}",
            self.text
        );
        assert!(self.body["title"].is_string(), "title; body: {}", self.text);
        self
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(self.status.as_u16(), status, "status; body: {}", self.text);
        self
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

impl TestClient {
    pub fn new(port: u16) -> Self {
        Self::with_base(format!("http://127.0.0.1:{port}"))
    }

    pub fn with_base(base: String) -> Self {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish();
        Self { base, client }
    }

    /// The same server, every request sending `Authorization: Bearer <token>`.
    pub fn with_bearer(&self, token: &str) -> Self {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .bearer_auth(token)
            .finish();
        Self {
            base: self.base.clone(),
            client,
        }
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.send(Method::GET, path, &[], None).await
    }

    /// Polls `/metrics` until one of its lines is exactly `line` (for a
    /// gauge refreshed in the background); panics after 15 s.
    pub async fn wait_for_metric_line(&self, line: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let text = self.get("/metrics").await.text;
            if text.lines().any(|l| l == line) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no `{line}` in\n{text}"
            );
            actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> TestResponse {
        self.send_json(Method::POST, path, body).await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> TestResponse {
        self.send_json(Method::PUT, path, body).await
    }

    /// `method path` with `body` as JSON.
    async fn send_json(&self, method: Method, path: &str, body: &Value) -> TestResponse {
        self.send(
            method,
            path,
            &[("content-type", "application/json")],
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    /// A POST with a raw body and the given content type (for bad-input cases).
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<Vec<u8>>,
    ) -> TestResponse {
        self.send(
            Method::POST,
            path,
            &[("content-type", content_type)],
            Some(body.into()),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> TestResponse {
        self.send(Method::DELETE, path, &[], None).await
    }

    /// Any request, with raw headers and body, for the bad-input cases.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> TestResponse {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.insert_header((*name, *value));
        }
        let sent = match body {
            Some(body) => request.send_body(body).await,
            None => request.send().await,
        };
        let mut response = sent.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let bytes = response
            .body()
            .limit(16 * 1024 * 1024)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: reading body: {e}"));
        let text = String::from_utf8_lossy(&bytes).into_owned();
        TestResponse {
            status: response.status(),
            headers: response.headers().clone(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text,
        }
    }
}

/// A server running in the background of a test.
pub struct Spawned {
    pub port: u16,
    pub client: TestClient,
    pub shutdown: shared_server::ShutdownHandle,
    pub task: actix_web::rt::task::JoinHandle<std::io::Result<()>>,
}

/// Runs an already-bound server in the background (the port is known before
/// it serves, so no test ever waits for a server to come up).
pub fn spawn(server: shared_server::Server) -> Spawned {
    let port = server.port();
    let shutdown = server.shutdown_handle();
    let task = actix_web::rt::spawn(server.run_until_stopped());
    Spawned {
        port,
        client: TestClient::new(port),
        shutdown,
        task,
    }
}

impl Spawned {
    /// Stops the server at once and waits until its port is closed.
    pub async fn stop(&mut self) {
        self.shutdown.shutdown(Duration::ZERO).await;
        let _ = (&mut self.task).await;
    }
}

/// A throwaway database for one test.
///
/// With `TEST_DATABASE_URL` set (a PostgreSQL server URL, as `scripts/test.sh`
/// sets it for its PostgreSQL pass) it is a freshly created, randomly named
/// database on that server; otherwise an SQLite file in the temp folder,
/// removed (with its WAL files) when dropped.
pub struct TestDatabase {
    pub config: shared_db::DatabaseConfig,
    sqlite_path: Option<std::path::PathBuf>,
}

impl TestDatabase {
    pub async fn create(service: &str) -> Self {
        let name = format!("{service}_test_{}", uuid::Uuid::new_v4().simple());
        match std::env::var("TEST_DATABASE_URL") {
            Ok(server) if !server.is_empty() => {
                use sqlx::Connection;
                sqlx::any::install_default_drivers();
                let mut admin = sqlx::AnyConnection::connect(&server)
                    .await
                    .expect("TEST_DATABASE_URL is reachable");
                // The name is ours (letters, digits, '_'): safe to format in.
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await
                    .expect("test database created");
                let _ = admin.close().await;
                let (base, _) = server.rsplit_once('/').expect("URL ends in /database");
                Self {
                    config: shared_db::DatabaseConfig {
                        url: format!("{base}/{name}"),
                        max_connections: 8,
                    },
                    sqlite_path: None,
                }
            }
            _ => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                Self {
                    config: shared_db::DatabaseConfig::sqlite_file(&path),
                    sqlite_path: Some(path),
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // PostgreSQL test databases go with the throwaway cluster.
        let Some(sqlite_path) = &self.sqlite_path else {
            return;
        };
        for suffix in ["", "-wal", "-shm"] {
            let mut path = sqlite_path.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Polls `done` every 50 ms until it holds, and returns how long that took.
///
/// # Panics
/// When it still does not hold after `within` (the message names `what`).
pub async fn eventually(
    what: &str,
    within: Duration,
    mut done: impl AsyncFnMut() -> bool,
) -> Duration {
    let started = std::time::Instant::now();
    while !done().await {
        assert!(started.elapsed() < within, "timed out waiting for {what}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}
