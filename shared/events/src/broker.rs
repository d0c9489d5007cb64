//! The JetStream connection and the streams.
//!
//! Each producing service owns one stream, `SHOP_<SERVICE>`, holding the
//! subjects `shop.<service>.>`, created (or brought to the configured
//! settings) when the relay first reaches the broker. Dead letters go to one
//! shared stream, [`DEAD_LETTER_STREAM`].

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use futures::future::LocalBoxFuture;

use crate::EventsConfig;
use shared_http::health::{CheckOutcome, HealthCheck};

/// The stream that keeps every consumer's dead letters.
pub const DEAD_LETTER_STREAM: &str = "SHOP_DEAD_LETTERS";

/// The subject of the dead letters of `consumer`.
pub fn dead_letter_subject(consumer: &str) -> String {
    format!("shop.dead_letter.{consumer}")
}

/// The stream of the events `service` produces.
pub fn stream_name(service: &str) -> String {
    format!("SHOP_{}", service.to_ascii_uppercase())
}

/// A connection to NATS with JetStream, and the settings of the streams.
#[derive(Clone)]
pub struct Broker {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    config: EventsConfig,
}

impl Broker {
    /// Connects to `NATS_URL` when events are on; `None` when they are off.
    /// The broker need not be up: the client keeps trying in the background,
    /// and the relay and the consumers wait for it.
    ///
    /// # Errors
    /// When the URL cannot be used at all.
    pub async fn connect(config: &EventsConfig, service: &str) -> anyhow::Result<Option<Self>> {
        let Some(url) = &config.nats_url else {
            return Ok(None);
        };
        let client = async_nats::ConnectOptions::new()
            .name(service)
            .retry_on_initial_connect()
            .max_reconnects(None)
            .event_callback(|event| async move {
                tracing::info!(%event, "events broker connection");
            })
            // A comma list names several servers (a cluster): the client
            // takes them as a list, not as one string.
            .connect(url.split(',').map(str::trim).collect::<Vec<_>>())
            .await?;
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(Duration::from_secs(5));
        Ok(Some(Self {
            client,
            jetstream,
            config: config.clone(),
        }))
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    pub fn config(&self) -> &EventsConfig {
        &self.config
    }

    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Creates the stream `name` for `subjects`, or brings an existing one to
    /// the configured settings.
    ///
    /// # Errors
    /// When the broker cannot be reached or refuses the settings.
    pub async fn ensure_stream(&self, name: &str, subjects: Vec<String>) -> anyhow::Result<()> {
        let config = stream::Config {
            name: name.to_owned(),
            subjects,
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            num_replicas: self.config.stream_replicas,
            duplicate_window: self.config.duplicate_window,
            max_age: self.config.max_age,
            max_bytes: self.config.max_bytes,
            // Reads by subject without a consumer (listing dead letters).
            allow_direct: true,
            ..Default::default()
        };
        self.jetstream
            .create_or_update_stream(config)
            .await
            .map_err(|e| anyhow::anyhow!("creating the stream {name}: {e}"))?;
        Ok(())
    }

    /// The stream of the events `service` produces.
    ///
    /// # Errors
    /// As [`Broker::ensure_stream`].
    pub async fn ensure_service_stream(&self, service: &str) -> anyhow::Result<()> {
        self.ensure_stream(&stream_name(service), vec![format!("shop.{service}.>")])
            .await
    }

    /// The stream of dead letters.
    ///
    /// # Errors
    /// As [`Broker::ensure_stream`].
    pub async fn ensure_dead_letter_stream(&self) -> anyhow::Result<()> {
        self.ensure_stream(DEAD_LETTER_STREAM, vec!["shop.dead_letter.>".to_owned()])
            .await
    }
}

/// `/health` shows whether the broker is connected; never required for
/// readiness, since the outbox keeps every event while it is away.
pub struct BrokerCheck(pub Broker);

impl HealthCheck for BrokerCheck {
    fn name(&self) -> &str {
        "events"
    }

    fn required(&self) -> bool {
        false
    }

    fn check(&self) -> LocalBoxFuture<'_, CheckOutcome> {
        let connected = self.0.is_connected();
        Box::pin(async move {
            if connected {
                CheckOutcome::up()
            } else {
                CheckOutcome::down("not connected to the events broker")
            }
        })
    }
}
