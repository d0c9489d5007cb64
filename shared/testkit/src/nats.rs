//! A real `nats-server` with JetStream for a test: started on a free port
//! with its own storage folder, stopped and started again on the same port
//! and storage (a broker outage), killed when dropped.
//!
//! The binary is `NATS_SERVER_BIN`, else `nats-server` on the `PATH`
//! (`scripts/test.sh` installs it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use serde_json::Value;

use shared_events::EventsConfig;

/// A JetStream server of one test.
pub struct NatsServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// More command-line arguments (a cluster node's name and routes).
    extra: Vec<String>,
}

/// A free TCP port on loopback.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl NatsServer {
    /// Starts a server and waits until it accepts connections.
    pub async fn start() -> Self {
        let mut server = Self::new(free_port(), Vec::new());
        server.resume().await;
        server
    }

    /// A server on `port` with its own storage folder and `extra` arguments,
    /// not started yet.
    pub(crate) fn new(port: u16, extra: Vec<String>) -> Self {
        let dir = std::env::temp_dir().join(format!("nats-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("storage folder");
        Self {
            port,
            dir,
            child: None,
            extra,
        }
    }

    /// Whether the process is running (not stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Events on, against this server, with settings fit for tests: short
    /// backoffs and ack wait, a relay that polls often.
    pub fn events_config(&self) -> EventsConfig {
        EventsConfig {
            nats_url: Some(self.url()),
            relay_interval: Duration::from_millis(50),
            redelivery_backoff: vec![Duration::from_millis(100)],
            ack_wait: Duration::from_secs(2),
            max_deliver: 3,
            ..EventsConfig::off()
        }
    }

    /// Stops the server (SIGKILL: an outage, not a goodbye). Storage stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and storage.
    pub async fn resume(&mut self) {
        let binary = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into());
        // The server's log, beside its storage: what a failed start said.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .map_or_else(|_| Stdio::null(), Stdio::from);
        let child = Command::new(&binary)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting {binary} (install nats-server, or set NATS_SERVER_BIN): {e}")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().is_ok_and(|status| status.is_some()));
            assert!(
                Instant::now() < deadline && !exited,
                "nats-server did not start on port {}: {}",
                self.port,
                std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A JetStream context on this server.
    pub async fn jetstream(&self) -> jetstream::Context {
        let client = async_nats::connect(self.url())
            .await
            .expect("connected to nats-server");
        jetstream::new(client)
    }

    /// Every message in `stream`, in order: subject, headers (name, first
    /// value) and the payload as JSON. Empty when the stream does not exist.
    pub async fn messages(&self, stream: &str) -> Vec<StoredMessage> {
        let jetstream = self.jetstream().await;
        let Ok(mut stream) = jetstream.get_stream(stream).await else {
            return Vec::new();
        };
        let state = stream.info().await.expect("stream info").state.clone();
        let mut messages = Vec::new();
        if state.messages == 0 {
            return messages;
        }
        for sequence in state.first_sequence..=state.last_sequence {
            let Ok(message) = stream.get_raw_message(sequence).await else {
                continue;
            };
            let headers = message
                .headers
                .iter()
                .map(|(name, values)| {
                    let value = values
                        .first()
                        .map(|v| v.as_str().to_owned())
                        .unwrap_or_default();
                    (name.to_string(), value)
                })
                .collect();
            messages.push(StoredMessage {
                subject: message.subject.to_string(),
                headers,
                payload: serde_json::from_slice(&message.payload).unwrap_or(Value::Null),
            });
        }
        messages
    }

    /// Waits until `stream` holds at least `count` messages, and returns them.
    pub async fn wait_for_messages(&self, stream: &str, count: usize) -> Vec<StoredMessage> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let messages = self.messages(stream).await;
            if messages.len() >= count || Instant::now() > deadline {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl NatsServer {
    /// Waits for exactly `expected` events in `stream`, the last of them
    /// about `marker` (its `subject`), and checks them all with
    /// [`assert_valid_and_distinct`] against the schemas in `schemas`.
    ///
    /// The relay publishes in commit order, so once the marker's event is in
    /// the stream, any event an earlier change wrongly produced is there too:
    /// "exactly `expected`" then also shows that nothing more was published.
    pub async fn wait_for_events_up_to(
        &self,
        stream: &str,
        expected: usize,
        marker: &str,
        schemas: &Path,
    ) -> Vec<StoredMessage> {
        let messages = self.wait_for_messages(stream, expected).await;
        assert_eq!(messages.len(), expected, "{messages:#?}");
        let last = &messages[expected - 1].payload;
        assert_eq!(last["subject"], marker, "{messages:#?}");
        assert_valid_and_distinct(&messages, schemas);
        messages
    }
}

/// Each message is a valid event of its type: it matches the schema the
/// event catalogue (`events/asyncapi.json`, see [`crate::asyncapi`]) gives
/// its channel, which is the producer's `<schemas>/<type>.schema.json`. It
/// is published under its subject = type, stored under its own id
/// (`Nats-Msg-Id`) with a trace context, and no id is stored twice.
pub fn assert_valid_and_distinct(messages: &[StoredMessage], schemas: &Path) {
    let catalogue = crate::asyncapi::EventCatalogue::load();
    let mut ids = std::collections::BTreeSet::new();
    for message in messages {
        let event = &message.payload;
        assert_eq!(event["type"], message.subject.as_str(), "{event:#}");
        catalogue.assert_matches(&message.subject, event, schemas);
        let id = event["id"].as_str().expect("an id");
        assert_eq!(
            message.headers.get("Nats-Msg-Id").map(String::as_str),
            Some(id)
        );
        let traceparent = message.headers.get("traceparent").expect("traceparent");
        assert_eq!(traceparent.split('-').count(), 4, "{traceparent}");
        assert!(ids.insert(id.to_owned()), "{id} stored twice");
    }
}

/// How many rows the outbox of the database at `config` holds, sent or not.
pub async fn outbox_rows(config: &shared_db::DatabaseConfig) -> i64 {
    let database = shared_db::Database::connect(config)
        .await
        .expect("database");
    let mut conn = database.read().await.expect("connection");
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(&mut *conn)
        .await
        .expect("outbox counted")
}

impl NatsServer {
    /// Relays `service`'s outbox in `db` (one unsent row of `event_type`)
    /// with a relay killed between publish and mark, then with a whole
    /// round: asserts that JetStream kept one copy (the second publish counted
    /// `duplicate`) and that the row is then sent. Returns the stream's messages.
    pub async fn assert_relay_killed_before_marking_publishes_once(
        &self,
        db: shared_db::Database,
        service: &'static str,
        event_type: &str,
    ) -> Vec<StoredMessage> {
        use shared_events::relay::{Relay, Round};
        use shared_events::{Broker, EventMetrics, Outbox};
        let broker = Broker::connect(&self.events_config(), service)
            .await
            .expect("connects")
            .expect("events on");
        broker.ensure_service_stream(service).await.expect("stream");
        let mut registry = shared_http::metrics::Registry::default();
        let metrics = EventMetrics::register(&mut registry);
        let relay = Relay::new(db, broker, Outbox::on(), metrics, service);
        let killed = relay.round_killed_before_marking().await.expect("round");
        assert_eq!(killed, Round::Sent(1));
        assert_eq!(relay.round().await.expect("round"), Round::Sent(1));
        assert_eq!(relay.round().await.expect("round"), Round::Sent(0));
        let text = shared_http::metrics::MetricsRegistry::new(registry).render();
        for outcome in ["published", "duplicate"] {
            let series =
                format!(r#"events_published_total{{type="{event_type}",outcome="{outcome}"}} 1"#);
            assert!(text.lines().any(|l| l == series), "{text}");
        }
        let messages = self
            .messages(&shared_events::broker::stream_name(service))
            .await;
        assert_eq!(messages.len(), 1, "{messages:#?}");
        messages
    }
}

/// A message as stored in a stream.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub subject: String,
    pub headers: std::collections::BTreeMap<String, String>,
    pub payload: Value,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Checks `event` against the JSON Schema in the file `schema` (2020-12),
/// panicking with every violation.
pub fn assert_matches_schema(schema: &Path, event: &Value) {
    let text = std::fs::read_to_string(schema)
        .unwrap_or_else(|e| panic!("reading {}: {e}", schema.display()));
    let schema_json: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", schema.display()));
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema_json)
        .unwrap_or_else(|e| panic!("{} does not compile: {e}", schema.display()));
    let errors: Vec<String> = validator
        .iter_errors(event)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "event does not match {}: {errors:?}\n{event:#}",
        schema.display()
    );
}
