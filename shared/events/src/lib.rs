//! Events: what happened in one service, delivered to those that need it,
//! through NATS JetStream.
//!
//! Off while `NATS_URL` is unset: nothing is written, nothing connects, and
//! every service behaves as it did without events.
//!
//! The pieces, in the order an event goes through them:
//!
//! - [`envelope`]: the CloudEvents 1.0 document every event is.
//! - [`outbox`]: a producing service writes its event in the same database
//!   transaction as the change it describes, so that an event exists if and
//!   only if its change was committed.
//! - [`broker`]: the JetStream connection and the service's stream
//!   (`SHOP_<SERVICE>`, subjects `shop.<service>.>`), created or updated at
//!   start-up from settings.
//! - [`relay`]: a background task that publishes the outbox in order, with
//!   `Nats-Msg-Id` = the event id (JetStream drops a second publish of the same
//!   id within its duplicate window), and marks a row sent only after
//!   JetStream acknowledged it. Broker down: the outbox grows, the relay backs
//!   off and catches up.
//! - [`consumer`]: durable pull consumers that acknowledge an event only after
//!   its effect is committed, with an inbox of handled event ids written in
//!   the same transaction (a redelivery changes nothing), redelivery with
//!   backoff, and a dead-letter subject after `EVENTS_MAX_DELIVER` deliveries
//!   (the event is ended only once its dead letter is stored).
//! - [`dead_letters`]: listing, replaying and counting those dead letters,
//!   kept until replayed or deleted (no age limit; full, the stream refuses
//!   new ones).
//! - [`feed`]: every event of the shop as Server-Sent Events, from ephemeral
//!   consumers fanned out to any number of listeners.
//! - [`metrics`]: outbox depth and age, publish outcomes, consumer lag,
//!   redeliveries, dead letters (made, and kept), delivery latency.
//!
//! Owns: the envelope, outbox, relay, consumers, inbox, dead letters, live
//! feed, the `NATS_URL`/`EVENTS_*` settings ([`EventsConfig`]) and the
//! `events_*` metrics. Must not know: which events a service publishes or
//! what a consumer does with them (services pass subjects and handlers in).

mod config;
pub use config::EventsConfig;

pub mod broker;
pub mod consumer;
pub mod dead_letters;
pub mod envelope;
pub mod feed;
pub mod metrics;
pub mod outbox;
pub mod relay;
mod stream_read;

pub use broker::Broker;
pub use consumer::{Handler, Inbox, Subscription};
pub use envelope::CloudEvent;
pub use metrics::EventMetrics;
pub use outbox::Outbox;
