//! Each item's change history: the rows written beside a change, and
//! reading them back.

use anyhow::Context;
use shared_auth::Actor;
use sqlx::{AnyConnection, Row};

use super::Store;
use crate::domain::{ChangeKind, ItemChange, ItemDetails, Sku, StockAdjustment};

/// One history row to write beside a change.
pub(super) struct NewChange<'a> {
    pub(super) sku: &'a Sku,
    pub(super) at: i64,
    pub(super) actor: &'a Actor,
    pub(super) kind: ChangeKind,
    pub(super) adjustment: Option<(&'a StockAdjustment, i64)>,
    pub(super) details: Option<&'a ItemDetails>,
}

impl Store {
    /// Writes a history row. Called after the change has written the item's
    /// row, which serialises changes to one item: the next `seq` is free.
    pub(super) async fn record(
        tx: &mut AnyConnection,
        change: &NewChange<'_>,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO item_changes \
             (sku, seq, at, actor, kind, delta, reason, stock_after, name, category) \
             VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM item_changes WHERE sku = $1), \
             $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(change.sku.as_str())
        .bind(change.at)
        .bind(change.actor.as_str())
        .bind(change.kind.as_str())
        .bind(change.adjustment.map(|(a, _)| a.delta()))
        .bind(change.adjustment.map(|(a, _)| a.reason().to_owned()))
        .bind(change.adjustment.map(|(_, after)| after))
        .bind(change.details.map(|d| d.name.as_str().to_owned()))
        .bind(change.details.map(|d| d.category.as_str().to_owned()))
        .execute(&mut *tx)
        .await
        .context("recording an item change")?;
        Ok(())
    }

    /// An item's last `limit` changes, newest first; `None` for an unknown sku.
    ///
    /// # Errors
    /// On a database error, or a stored row the code cannot read.
    #[tracing::instrument(skip_all, fields(sku = sku.as_str()))]
    pub async fn item_history(
        &self,
        sku: &Sku,
        limit: u32,
    ) -> anyhow::Result<Option<Vec<ItemChange>>> {
        let mut conn = self.db.read().await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT sku FROM items WHERE sku = $1")
            .bind(sku.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT at, actor, kind, delta, reason, stock_after, name, category \
             FROM item_changes WHERE sku = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(sku.as_str())
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        let changes = rows
            .iter()
            .map(|row| {
                Ok(ItemChange {
                    at: row.try_get("at")?,
                    actor: row.try_get("actor")?,
                    kind: ChangeKind::parse(&row.try_get::<String, _>("kind")?)?,
                    delta: row.try_get("delta")?,
                    reason: row.try_get("reason")?,
                    stock_after: row.try_get("stock_after")?,
                    name: row.try_get("name")?,
                    category: row.try_get("category")?,
                })
            })
            .collect::<anyhow::Result<_>>()
            .with_context(|| format!("reading the history of {sku}"))?;
        Ok(Some(changes))
    }
}
