//! All of order's SQL: orders, their lines, the last price seen per sku, and
//! the outbox row of each status change (written in the change's transaction).
//!
//! One file per aggregate: [`orders`] (orders and their lines) and [`prices`]
//! (the last price seen per sku); this one holds the [`Store`], its set-up
//! and the rows both use.

use std::sync::Arc;

use anyhow::Context;
use shared_db::{Database, DatabaseConfig};
use shared_events::{CloudEvent, Outbox};
use shared_vocabulary::money::Money;
use sqlx::{AnyConnection, Row};

use crate::domain::{Order, OrderLine, Sku};

mod orders;
mod prices;

use prices::WrittenPrices;

const ORDER_COLUMNS: &str = "id, customer_id, status, pricing, currency, total_cents, \
     lines, request_fingerprint, failure_reason, created_at, updated_at";

/// Order's data. Cheap to clone (the pools are shared).
#[derive(Clone)]
pub struct Store {
    db: Database,
    outbox: Outbox,
    /// Builds the event of an order's status change (the domain's rule,
    /// given at start-up); the store only writes what it returns.
    event: OrderEvent,
    written: Arc<WrittenPrices>,
}

/// The event an order in its current status publishes, if any.
pub type OrderEvent = fn(&Order) -> anyhow::Result<Option<CloudEvent>>;

/// No events: a store without an outbox.
fn no_event(_: &Order) -> anyhow::Result<Option<CloudEvent>> {
    Ok(None)
}

/// A consumer's handling of one event: recorded in the inbox in the same
/// transaction as its effect.
#[derive(Debug, Clone, Copy)]
pub struct Handled<'a> {
    pub consumer: &'a str,
    pub event_id: &'a str,
}

/// What recording a new order found.
#[derive(Debug)]
pub enum Recorded {
    /// A new pending order under the given id.
    New,
    /// The idempotency key was used before: the first order.
    Existing(Order),
}

/// An order line as its row stores it (in the `lines` JSON array).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredLine {
    sku: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    quantity: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unit_price_cents: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    discount_percent: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    line_total_cents: Option<i64>,
}

impl From<&OrderLine> for StoredLine {
    fn from(line: &OrderLine) -> Self {
        Self {
            sku: line.sku.as_str().to_owned(),
            name: line.name.clone(),
            quantity: line.quantity,
            unit_price_cents: line.unit_price.map(Money::cents),
            discount_percent: line.discount_percent,
            line_total_cents: line.line_total.map(Money::cents),
        }
    }
}

impl TryFrom<StoredLine> for OrderLine {
    type Error = anyhow::Error;
    fn try_from(line: StoredLine) -> anyhow::Result<Self> {
        Ok(Self {
            sku: Sku::parse(&line.sku)?,
            name: line.name,
            quantity: line.quantity,
            unit_price: line.unit_price_cents.map(Money::from_cents),
            discount_percent: line.discount_percent,
            line_total: line.line_total_cents.map(Money::from_cents),
        })
    }
}

impl Store {
    /// Connects and brings the schema up to date.
    ///
    /// # Errors
    /// When the database cannot be reached or a migration fails.
    pub async fn connect(config: &DatabaseConfig) -> anyhow::Result<Self> {
        let db = Database::connect(config).await?;
        db.migrate(sqlx::migrate!("./migrations"))
            .await
            .context("migrating the order store")?;
        let store = Self {
            db,
            outbox: Outbox::off(),
            event: no_event,
            written: Arc::default(),
        };
        let moved = store
            .move_legacy_lines()
            .await
            .context("moving order lines into their orders")?;
        if moved > 0 {
            tracing::info!(
                orders = moved,
                "moved the lines of earlier orders into their rows"
            );
        }
        Ok(store)
    }

    /// Copies the lines of orders placed before lines moved into the order's
    /// row (migration 20261126000001) out of `order_items`, then empties it.
    /// Returns how many orders it updated: none after the first start.
    async fn move_legacy_lines(&self) -> anyhow::Result<usize> {
        let rows = sqlx::query(
            "SELECT order_id, sku, name, quantity, unit_price_cents, discount_percent, \
             line_total_cents FROM order_items ORDER BY order_id, line_no",
        )
        .fetch_all(&mut *self.db.read().await?)
        .await?;
        let lines = rows
            .iter()
            .map(|row| {
                let line = StoredLine {
                    sku: row.try_get("sku")?,
                    name: row.try_get("name")?,
                    quantity: u32::try_from(row.try_get::<i64, _>("quantity")?)?,
                    unit_price_cents: row.try_get("unit_price_cents")?,
                    discount_percent: row
                        .try_get::<Option<i64>, _>("discount_percent")?
                        .map(u8::try_from)
                        .transpose()?,
                    line_total_cents: row.try_get("line_total_cents")?,
                };
                Ok((row.try_get("order_id")?, line))
            })
            .collect::<anyhow::Result<_>>()?;
        self.db
            .move_into_json_column("orders", "lines", "order_items", lines)
            .await
    }

    /// The store writing each status change's event, as `event` builds it,
    /// to `outbox` in the change's transaction.
    #[must_use]
    pub fn with_events(mut self, outbox: Outbox, event: OrderEvent) -> Self {
        self.outbox = outbox;
        self.event = event;
        self
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Writes the event of `order`'s status (if it has one) in `tx`.
    async fn append_event(&self, tx: &mut AnyConnection, order: &Order) -> anyhow::Result<()> {
        if let Some(event) = (self.event)(order)? {
            self.outbox.append(tx, &event).await?;
        }
        Ok(())
    }
}
