//! The JetStream connection and the streams.
//!
//! Each producing service owns one stream, `SHOP_<SERVICE>`, holding the
//! subjects `shop.<service>.>`, created (or brought to the configured
//! settings) when the relay first reaches the broker. Dead letters go to one
//! shared stream, [`DEAD_LETTER_STREAM`].

use std::time::Duration;

use async_nats::jetstream::context::CreateStreamErrorKind;
use async_nats::jetstream::{self, stream};
use futures::future::LocalBoxFuture;

use crate::EventsConfig;
use shared_http::health::{CheckOutcome, HealthCheck};

/// How many times a stream's creation is asked for when it times out.
const APPLY_ATTEMPTS: u32 = 3;

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
    /// the configured settings: events are kept `EVENTS_MAX_AGE_MS`, and the
    /// oldest dropped past `EVENTS_MAX_BYTES`.
    ///
    /// # Errors
    /// When the broker cannot be reached or refuses the settings.
    pub async fn ensure_stream(&self, name: &str, subjects: Vec<String>) -> anyhow::Result<()> {
        self.apply(stream::Config {
            name: name.to_owned(),
            subjects,
            max_age: self.config.max_age,
            max_bytes: self.config.max_bytes,
            discard: stream::DiscardPolicy::Old,
            ..self.stream_defaults()
        })
        .await
    }

    /// The stream of the events `service` produces.
    ///
    /// # Errors
    /// As [`Broker::ensure_stream`].
    pub async fn ensure_service_stream(&self, service: &str) -> anyhow::Result<()> {
        self.ensure_stream(&stream_name(service), vec![format!("shop.{service}.>")])
            .await
    }

    /// The stream of dead letters, kept until replayed or deleted: no age
    /// limit, and when `EVENTS_DEAD_LETTER_MAX_BYTES` is reached it refuses
    /// new dead letters (their events are then not ended but delivered
    /// again later) rather than dropping old ones. (nats-server 2.10.4 and
    /// earlier undercount a message against the limit and may then drop the
    /// oldest at the edge, nats-io/nats-server#4771; compose and k8s run 2.15.)
    ///
    /// # Errors
    /// As [`Broker::ensure_stream`].
    pub async fn ensure_dead_letter_stream(&self) -> anyhow::Result<()> {
        self.apply(stream::Config {
            name: DEAD_LETTER_STREAM.to_owned(),
            subjects: vec!["shop.dead_letter.>".to_owned()],
            max_age: Duration::ZERO,
            max_bytes: self.config.dead_letter_max_bytes,
            discard: stream::DiscardPolicy::New,
            ..self.stream_defaults()
        })
        .await
    }

    /// What every stream shares.
    fn stream_defaults(&self) -> stream::Config {
        stream::Config {
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            num_replicas: self.config.stream_replicas,
            duplicate_window: self.config.duplicate_window,
            // Reads by subject without a consumer (listing dead letters).
            allow_direct: true,
            ..Default::default()
        }
    }

    /// Creates or updates a stream; a request that timed out (a server busy
    /// writing, a cluster electing its leader) is sent again, up to
    /// [`APPLY_ATTEMPTS`] in all: the request is idempotent.
    async fn apply(&self, config: stream::Config) -> anyhow::Result<()> {
        let name = config.name.clone();
        let mut attempt = 1;
        loop {
            match self.jetstream.create_or_update_stream(config.clone()).await {
                Ok(_) => return Ok(()),
                Err(e)
                    if e.kind() == CreateStreamErrorKind::TimedOut && attempt < APPLY_ATTEMPTS =>
                {
                    tracing::warn!(stream = %name, attempt, "creating the stream timed out; asking again");
                    attempt += 1;
                }
                Err(e) => anyhow::bail!("creating the stream {name}: {e}"),
            }
        }
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
