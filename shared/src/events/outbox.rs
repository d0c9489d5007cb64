//! The transactional outbox: an event is a row written in the same database
//! transaction as the change it describes, so that it exists if and only if
//! the change was committed. The [`relay`](super::relay) publishes the rows.
//!
//! Each producing service's migrations create the table (portable SQL):
//!
//! ```sql
//! CREATE TABLE outbox (
//!     id          TEXT PRIMARY KEY,   -- the event id (UUIDv7, time-ordered)
//!     subject     TEXT NOT NULL,      -- the event type, also the NATS subject
//!     event       TEXT NOT NULL,      -- the CloudEvent, JSON
//!     traceparent TEXT,               -- W3C trace context of the change
//!     created_at  BIGINT NOT NULL,    -- ms since the Unix epoch
//!     sent_at     BIGINT              -- NULL until JetStream acknowledged it
//! );
//! CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
//! CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;
//! ```

use std::sync::Arc;

use sqlx::AnyConnection;
use tokio::sync::Notify;

use super::envelope::CloudEvent;
use crate::{telemetry, timestamp};

/// Where a service's store writes its events; a no-op while events are off.
#[derive(Clone)]
pub struct Outbox {
    on: bool,
    /// Wakes the relay after a commit, so an event need not wait for its poll.
    wake: Arc<Notify>,
}

impl Outbox {
    /// Events off: [`Outbox::append`] writes nothing.
    pub fn off() -> Self {
        Self {
            on: false,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Events on: rows are written and the relay is woken after commits.
    pub fn on() -> Self {
        Self {
            on: true,
            wake: Arc::new(Notify::new()),
        }
    }

    /// On when there is a broker to relay to.
    pub fn for_broker<T>(broker: Option<&T>) -> Self {
        if broker.is_some() {
            Self::on()
        } else {
            Self::off()
        }
    }

    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Writes `event` as part of the open transaction `tx`, with the current
    /// trace context. Call [`Outbox::committed`] once `tx` is committed.
    ///
    /// # Errors
    /// When the row cannot be written (the caller's transaction then fails).
    pub async fn append(&self, tx: &mut AnyConnection, event: &CloudEvent) -> anyhow::Result<()> {
        if !self.on {
            return Ok(());
        }
        let traceparent = telemetry::current_traceparent();
        sqlx::query(
            "INSERT INTO outbox (id, subject, event, traceparent, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&event.id)
        .bind(&event.event_type)
        .bind(serde_json::to_string(event)?)
        .bind(traceparent)
        .bind(timestamp::now_ms())
        .execute(tx)
        .await?;
        Ok(())
    }

    /// Tells the relay that rows were committed.
    pub fn committed(&self) {
        if self.on {
            self.wake.notify_one();
        }
    }

    /// Resolves at the next [`Outbox::committed`] (or at once, if one came
    /// since the last wait).
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }
}
