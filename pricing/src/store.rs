//! All of pricing's SQL, behind domain-level methods.
//!
//! Reads are one indexed query each (`GET /price/{sku}` by primary key,
//! `POST /price/bulk` one `IN (…)` for every sku). A price change, its
//! history row and its event (in the outbox) are one transaction. The store
//! builds no event: the caller gives it a function (the domain's, in
//! `crate::events`) that builds one from what the change found, and the
//! store writes what it returns.

use std::collections::HashMap;

use anyhow::Context;
use shared_auth::Actor;
use shared_db::DatabaseConfig;
use shared_db::{Database, placeholders};
use shared_events::{CloudEvent, Outbox};
use shared_history::{AnyQuery, History, Payload};
use shared_vocabulary::money::Money;
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Row};

use crate::domain::{PriceBook, PriceEntry, Sku, Tier};

/// Pricing's data. Cheap to clone (the pools are shared).
#[derive(Clone)]
pub struct Store {
    db: Database,
    /// Where price changes write their events (a no-op while events are off).
    outbox: Outbox,
}

/// Whether a `PUT /price/{sku}` priced a new sku or changed a price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    Updated,
}

/// One recorded price change: who, when, and the price set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceChange {
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub actor: String,
    pub entry: PriceEntry,
}

/// Who set each sku's price, when, and to what: `price_changes`.
const HISTORY: History = History {
    changes: "price_changes",
    subjects: "prices",
    key: "sku",
};

/// A price change records the price set.
impl Payload for PriceEntry {
    const COLUMNS: &'static [&'static str] = &["base_cents", "discount_percent", "tiers"];

    fn bind<'q>(&self, query: AnyQuery<'q>) -> anyhow::Result<AnyQuery<'q>> {
        Ok(query
            .bind(self.base.cents())
            .bind(i64::from(self.discount_percent))
            .bind(tiers_json(self.tiers.as_ref())?))
    }

    fn from_row(row: &sqlx::any::AnyRow) -> anyhow::Result<Self> {
        entry_from(row)
    }
}

fn tiers_json(tiers: Option<&Vec<Tier>>) -> anyhow::Result<Option<String>> {
    tiers
        .map(|t| serde_json::to_string(t).context("encoding quantity tiers"))
        .transpose()
}

/// A price from the columns `base_cents`, `discount_percent`, `tiers`.
fn entry_from(row: &sqlx::any::AnyRow) -> anyhow::Result<PriceEntry> {
    let discount: i64 = row.try_get("discount_percent")?;
    let tiers: Option<String> = row.try_get("tiers")?;
    Ok(PriceEntry {
        base: Money::from_cents(row.try_get("base_cents")?),
        discount_percent: u8::try_from(discount)
            .ok()
            .filter(|d| *d <= 100)
            .with_context(|| format!("stored discount {discount} is not a percentage"))?,
        tiers: tiers
            .map(|t| serde_json::from_str(&t).context("reading stored quantity tiers"))
            .transpose()?,
    })
}

fn priced_from(row: &sqlx::any::AnyRow) -> anyhow::Result<(Sku, PriceEntry)> {
    let sku: String = row.try_get("sku")?;
    let entry = entry_from(row).with_context(|| format!("the price of {sku:?} cannot be read"))?;
    let sku = Sku::parse(&sku).with_context(|| format!("price {sku:?} cannot be read"))?;
    Ok((sku, entry))
}

impl Store {
    /// Connects and brings the schema up to date; price changes write their
    /// events to `outbox`.
    ///
    /// # Errors
    /// When the database cannot be reached or a migration fails.
    pub async fn connect(config: &DatabaseConfig, outbox: Outbox) -> anyhow::Result<Self> {
        let db = Database::connect(config).await?;
        db.migrate(sqlx::migrate!("./migrations"))
            .await
            .context("migrating the pricing store")?;
        Ok(Self { db, outbox })
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Inserts the catalogue's prices when the store holds none; returns how
    /// many. Safe when several replicas start at once (existing skus are skipped).
    ///
    /// # Errors
    /// On a database error.
    pub async fn seed_if_empty(&self, book: &PriceBook) -> anyhow::Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM prices")
            .fetch_one(&mut *self.db.read().await?)
            .await?;
        if count > 0 {
            return Ok(0);
        }
        let mut conn = self.db.write().await?;
        let mut tx = conn.begin().await?;
        let mut inserted = 0;
        for (position, (sku, entry)) in (0_i64..).zip(book.entries()) {
            inserted += sqlx::query(
                "INSERT INTO prices (sku, base_cents, discount_percent, tiers, position) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sku) DO NOTHING",
            )
            .bind(sku)
            .bind(entry.base.cents())
            .bind(i64::from(entry.discount_percent))
            .bind(tiers_json(entry.tiers.as_ref())?)
            .bind(position)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(inserted)
    }

    /// # Errors
    /// On a database error, or a stored price the code cannot read.
    #[tracing::instrument(skip_all, fields(sku = sku.as_str()))]
    pub async fn get(&self, sku: &Sku) -> anyhow::Result<Option<PriceEntry>> {
        let row = self
            .db
            .reading(async |conn| {
                let select = sqlx::query(
                    "SELECT sku, base_cents, discount_percent, tiers FROM prices WHERE sku = $1",
                );
                Ok(select
                    .bind(sku.as_str())
                    .fetch_optional(&mut **conn)
                    .await?)
            })
            .await?;
        Ok(row.as_ref().map(priced_from).transpose()?.map(|(_, e)| e))
    }

    /// The prices of those of `skus` that have one, in one query.
    ///
    /// # Errors
    /// On a database error, or a stored price the code cannot read.
    #[tracing::instrument(skip_all, fields(skus = skus.len()))]
    pub async fn get_many(&self, skus: &[Sku]) -> anyhow::Result<HashMap<Sku, PriceEntry>> {
        if skus.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT sku, base_cents, discount_percent, tiers FROM prices WHERE sku IN ({})",
            placeholders(1, skus.len())
        );
        let rows = self
            .db
            .reading(async |conn| {
                // Only `$n` placeholders were formatted into `sql`; every value is bound.
                let mut query = sqlx::query(AssertSqlSafe(sql.as_str()));
                for sku in skus {
                    query = query.bind(sku.as_str());
                }
                Ok(query.fetch_all(&mut **conn).await?)
            })
            .await?;
        rows.iter().map(priced_from).collect()
    }

    /// Every price, in listing order.
    ///
    /// # Errors
    /// On a database error, or a stored price the code cannot read.
    pub async fn all(&self) -> anyhow::Result<Vec<(Sku, PriceEntry)>> {
        let rows = self
            .db
            .reading(async |conn| {
                let select = sqlx::query(
                    "SELECT sku, base_cents, discount_percent, tiers FROM prices ORDER BY position, sku",
                );
                Ok(select.fetch_all(&mut **conn).await?)
            })
            .await?;
        rows.iter().map(priced_from).collect()
    }

    /// Sets the price of `sku` (a new sku goes last in listings) and records
    /// who set it, with the event `event` builds from the price before
    /// (`None`: the sku had none) when the price is new or different, in one
    /// transaction.
    ///
    /// # Errors
    /// On a database error.
    #[tracing::instrument(skip_all, fields(sku = sku.as_str()))]
    pub async fn put(
        &self,
        sku: &Sku,
        entry: &PriceEntry,
        actor: &Actor,
        now: i64,
        event: impl FnOnce(Option<&PriceEntry>) -> anyhow::Result<CloudEvent>,
    ) -> anyhow::Result<PutOutcome> {
        let tiers = tiers_json(entry.tiers.as_ref())?;
        let mut conn = self.db.write().await?;
        let mut tx = conn.begin().await?;
        let created = sqlx::query(
            "INSERT INTO prices (sku, base_cents, discount_percent, tiers, position) \
             VALUES ($1, $2, $3, $4, (SELECT COALESCE(MAX(position), 0) + 1 FROM prices)) \
             ON CONFLICT (sku) DO NOTHING",
        )
        .bind(sku.as_str())
        .bind(entry.base.cents())
        .bind(i64::from(entry.discount_percent))
        .bind(tiers.clone())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let previous = if created {
            None
        } else {
            let previous = Self::lock_and_read(&mut tx, sku).await?;
            sqlx::query(
                "UPDATE prices SET base_cents = $2, discount_percent = $3, tiers = $4 \
                 WHERE sku = $1",
            )
            .bind(sku.as_str())
            .bind(entry.base.cents())
            .bind(i64::from(entry.discount_percent))
            .bind(tiers.clone())
            .execute(&mut *tx)
            .await?;
            Some(previous)
        };
        Self::record(&mut tx, sku, entry, actor, now).await?;
        if self.outbox.is_on() && previous.as_ref() != Some(entry) {
            let event = event(previous.as_ref())?;
            self.outbox
                .append(&mut tx, &event)
                .await
                .context("writing an event to the outbox")?;
        }
        tx.commit().await?;
        self.outbox.committed();
        Ok(if created {
            PutOutcome::Created
        } else {
            PutOutcome::Updated
        })
    }

    /// The price of `sku` as the last committed change left it. The no-op
    /// update first takes the row lock on PostgreSQL, so a concurrent change
    /// is either wholly before this read or waits for this transaction.
    async fn lock_and_read(tx: &mut AnyConnection, sku: &Sku) -> anyhow::Result<PriceEntry> {
        sqlx::query("UPDATE prices SET position = position WHERE sku = $1")
            .bind(sku.as_str())
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(
            "SELECT sku, base_cents, discount_percent, tiers FROM prices WHERE sku = $1",
        )
        .bind(sku.as_str())
        .fetch_one(&mut *tx)
        .await?;
        Ok(priced_from(&row)?.1)
    }

    async fn record(
        tx: &mut AnyConnection,
        sku: &Sku,
        entry: &PriceEntry,
        actor: &Actor,
        now: i64,
    ) -> anyhow::Result<()> {
        HISTORY
            .record(tx, sku.as_str(), now, actor.as_str(), entry)
            .await
            .context("recording a price change")
    }

    /// A sku's last `limit` price changes, newest first; `None` when it has no price.
    ///
    /// # Errors
    /// On a database error, or a stored row the code cannot read.
    #[tracing::instrument(skip_all, fields(sku = sku.as_str()))]
    pub async fn history(&self, sku: &Sku, limit: u32) -> anyhow::Result<Option<Vec<PriceChange>>> {
        let mut conn = self.db.read().await?;
        let changes = HISTORY
            .read::<PriceEntry>(&mut conn, sku.as_str(), limit)
            .await
            .with_context(|| format!("reading the price history of {sku}"))?;
        Ok(changes.map(|changes| {
            changes
                .into_iter()
                .map(|c| PriceChange {
                    at: c.at,
                    actor: c.actor,
                    entry: c.payload,
                })
                .collect()
        }))
    }
}
