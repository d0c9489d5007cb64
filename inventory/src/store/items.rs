//! Items and categories: the catalogue, its seed, and the changes
//! operators make to it (details and stock).

use anyhow::Context;
use shared_auth::Actor;
use shared_db::placeholders;
use shared_events::CloudEvent;
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Row};

use super::history::NewChange;
use super::{AdjustOutcome, PutItemOutcome, Store};
use crate::domain::{ChangeKind, Item, ItemDetails, Sku, StockAdjustment};

/// An item's details as [`Store::put_item`] left them.
struct Saved {
    item: Item,
    created: bool,
    /// Created, or its name or category is not what it was.
    changed: bool,
}

/// Filters for the item listing.
#[derive(Debug, Default)]
pub struct ItemFilter {
    pub category: Option<String>,
    pub skus: Option<Vec<Sku>>,
}

/// A category and what it holds.
#[derive(Debug, serde::Serialize)]
pub struct Category {
    pub name: String,
    pub items: i64,
    pub stock: i64,
}

/// An item from its row; a sku that is not one is an error naming it.
pub(super) fn item_from(row: &sqlx::any::AnyRow) -> anyhow::Result<Item> {
    let sku: String = row.try_get("sku")?;
    Ok(Item {
        sku: Sku::parse(&sku).with_context(|| format!("item {sku:?} cannot be read"))?,
        name: row.try_get("name")?,
        category: row.try_get("category")?,
        stock: row.try_get("stock")?,
    })
}

impl Store {
    /// Inserts the catalogue when the store holds no items, with the event
    /// `event` builds for each item inserted; returns how many. Safe when
    /// several replicas start at once (inserts skip existing skus).
    ///
    /// # Errors
    /// On a database error.
    pub async fn seed_if_empty(
        &self,
        items: &[Item],
        event: impl Fn(&Item) -> anyhow::Result<CloudEvent>,
    ) -> anyhow::Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM items")
            .fetch_one(&mut *self.db.read().await?)
            .await?;
        if count > 0 {
            return Ok(0);
        }
        let mut conn = self.db.write().await?;
        let mut tx = conn.begin().await?;
        let mut inserted = Vec::with_capacity(items.len());
        for item in items {
            let row = sqlx::query(
                "INSERT INTO items (sku, name, category, stock) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (sku) DO NOTHING RETURNING sku, name, category, stock",
            )
            .bind(item.sku.as_str())
            .bind(&item.name)
            .bind(&item.category)
            .bind(item.stock)
            .fetch_optional(&mut *tx)
            .await?;
            inserted.extend(row.as_ref().map(item_from).transpose()?);
        }
        // A consumer keeping stock from the events learns the seeded items too.
        if self.outbox.is_on() {
            let events = inserted
                .iter()
                .map(&event)
                .collect::<anyhow::Result<Vec<_>>>()?;
            self.outbox.append_all(&mut tx, &events).await?;
        }
        tx.commit().await?;
        self.outbox.committed();
        Ok(u64::try_from(inserted.len())?)
    }

    /// # Errors
    /// On a database error.
    #[tracing::instrument(skip_all)]
    pub async fn list_items(&self, filter: &ItemFilter) -> anyhow::Result<Vec<Item>> {
        let mut sql = String::from("SELECT sku, name, category, stock FROM items WHERE 1 = 1");
        let mut next = 1;
        if filter.category.is_some() {
            sql.push_str(" AND category = $1");
            next = 2;
        }
        if let Some(skus) = &filter.skus {
            sql.push_str(&format!(" AND sku IN ({})", placeholders(next, skus.len())));
        }
        sql.push_str(" ORDER BY sku");
        let rows = self
            .db
            .reading(async |conn| {
                // Only `$n` placeholders were formatted into `sql`; every value is bound.
                let mut query = sqlx::query(AssertSqlSafe(sql.as_str()));
                if let Some(category) = &filter.category {
                    query = query.bind(category);
                }
                for sku in filter.skus.iter().flatten() {
                    query = query.bind(sku.as_str());
                }
                Ok(query.fetch_all(&mut **conn).await?)
            })
            .await?;
        rows.iter().map(item_from).collect()
    }

    /// The item `sku`, from memory when read less than the cache's time
    /// ago and not changed by this process since. The stock shown may be
    /// that old when another replica changed it; reservations always take
    /// stock from the database's figure.
    ///
    /// # Errors
    /// On a database error.
    pub async fn get_item(&self, sku: &Sku) -> anyhow::Result<Option<Item>> {
        let miss = match self.items.get(sku) {
            Ok(item) => return Ok(Some(item)),
            Err(miss) => miss,
        };
        let item = self.read_item(sku).await?;
        if let Some(item) = &item {
            self.items.fill(sku.clone(), item.clone(), miss);
        }
        Ok(item)
    }

    #[tracing::instrument(skip_all, fields(sku))]
    async fn read_item(&self, sku: &Sku) -> anyhow::Result<Option<Item>> {
        let row = self
            .db
            .reading(async |conn| {
                let select =
                    sqlx::query("SELECT sku, name, category, stock FROM items WHERE sku = $1");
                Ok(select
                    .bind(sku.as_str())
                    .fetch_optional(&mut **conn)
                    .await?)
            })
            .await?;
        row.as_ref().map(item_from).transpose()
    }

    /// # Errors
    /// On a database error.
    pub async fn categories(&self) -> anyhow::Result<Vec<Category>> {
        let rows = sqlx::query(
            "SELECT category, COUNT(*) AS items, CAST(SUM(stock) AS BIGINT) AS stock \
             FROM items GROUP BY category ORDER BY category",
        )
        .fetch_all(&mut *self.db.read().await?)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Category {
                    name: r.try_get("category")?,
                    items: r.try_get("items")?,
                    stock: r.try_get("stock")?,
                })
            })
            .collect()
    }

    /// Creates the item (stock 0) or renames and recategorises it, recording
    /// the change, in one transaction; an item created or changed also gets
    /// the event `event` builds from it as saved and whether it was created
    /// (saving it as it was changes nothing, so publishes nothing).
    ///
    /// # Errors
    /// On a database error.
    #[tracing::instrument(skip_all, fields(sku = sku.as_str()))]
    pub async fn put_item(
        &self,
        sku: &Sku,
        details: &ItemDetails,
        actor: &Actor,
        now: i64,
        event: impl FnOnce(&Item, bool) -> anyhow::Result<CloudEvent>,
    ) -> anyhow::Result<PutItemOutcome> {
        let mut conn = self.db.write().await?;
        let mut tx = conn.begin().await?;
        let Saved {
            item,
            created,
            changed,
        } = Self::write_details(&mut tx, sku, details).await?;
        let change = NewChange {
            sku,
            at: now,
            actor,
            kind: if created {
                ChangeKind::Created
            } else {
                ChangeKind::Updated
            },
            adjustment: None,
            details: Some(details),
        };
        Self::record(&mut tx, &change).await?;
        if changed {
            self.append(&mut tx, || event(&item, created)).await?;
        }
        tx.commit().await?;
        self.outbox.committed();
        self.changed([sku]);
        Ok(if created {
            PutItemOutcome::Created(item)
        } else {
            PutItemOutcome::Updated(item)
        })
    }

    /// Creates the item `sku` (stock 0) with `details`, or sets them.
    async fn write_details(
        tx: &mut AnyConnection,
        sku: &Sku,
        details: &ItemDetails,
    ) -> anyhow::Result<Saved> {
        let created = sqlx::query(
            "INSERT INTO items (sku, name, category, stock) VALUES ($1, $2, $3, 0) \
             ON CONFLICT (sku) DO NOTHING",
        )
        .bind(sku.as_str())
        .bind(details.name.as_str())
        .bind(details.category.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        // Only a real change writes: which one it was is this statement's
        // answer, whatever runs concurrently.
        let updated = sqlx::query(
            "UPDATE items SET name = $2, category = $3 \
             WHERE sku = $1 AND (name <> $2 OR category <> $3) \
             RETURNING sku, name, category, stock",
        )
        .bind(sku.as_str())
        .bind(details.name.as_str())
        .bind(details.category.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let changed = created || updated.is_some();
        let row = match updated {
            Some(row) => row,
            // Still a write: it takes the item's row lock on PostgreSQL, which
            // `record` needs to number the history row.
            None => {
                sqlx::query(
                    "UPDATE items SET name = name WHERE sku = $1 \
                     RETURNING sku, name, category, stock",
                )
                .bind(sku.as_str())
                .fetch_one(&mut *tx)
                .await?
            }
        };
        Ok(Saved {
            item: item_from(&row)?,
            created,
            changed,
        })
    }

    /// Adds `adjustment`'s delta to the stock unless that would leave it below
    /// zero, recording the change, in one transaction. The check and the
    /// change are one conditional statement, so concurrent adjustments and
    /// reservations on any number of replicas can never overdraw it. The
    /// event `event` builds from the item as adjusted goes with it.
    ///
    /// # Errors
    /// On a database error.
    #[tracing::instrument(skip_all, fields(sku = sku.as_str(), delta = adjustment.delta()))]
    pub async fn adjust_stock(
        &self,
        sku: &Sku,
        adjustment: &StockAdjustment,
        actor: &Actor,
        now: i64,
        event: impl Fn(&Item) -> anyhow::Result<CloudEvent>,
    ) -> anyhow::Result<AdjustOutcome> {
        // Run again on a fresh connection when the first was lost before
        // its COMMIT (see `Database::in_transaction`).
        let adjusted = self
            .db
            .in_transaction(async |tx| {
                let adjusted = sqlx::query(
                    "UPDATE items SET stock = stock + $2 WHERE sku = $1 AND stock + $2 >= 0 \
                     RETURNING sku, name, category, stock",
                )
                .bind(sku.as_str())
                .bind(adjustment.delta())
                .fetch_optional(&mut *tx)
                .await?;
                // Nothing changed: the empty transaction commits as it is.
                let Some(row) = adjusted else {
                    return Ok(None);
                };
                let item = item_from(&row)?;
                let change = NewChange {
                    sku,
                    at: now,
                    actor,
                    kind: ChangeKind::Stock,
                    adjustment: Some((adjustment, item.stock)),
                    details: None,
                };
                Self::record(tx, &change).await?;
                self.append(tx, || event(&item)).await?;
                Ok(Some(item))
            })
            .await?;
        let Some(item) = adjusted else {
            return Ok(match self.read_item(sku).await? {
                Some(item) => AdjustOutcome::Insufficient(item),
                None => AdjustOutcome::NotFound,
            });
        };
        self.outbox.committed();
        self.changed([sku]);
        Ok(AdjustOutcome::Adjusted(item))
    }
}
