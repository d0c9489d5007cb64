//! Each item's change history: the rows written beside a change, and
//! reading them back.

use anyhow::Context;
use shared_auth::Actor;
use shared_history::{AnyQuery, History, Payload};
use sqlx::any::AnyRow;
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

/// The history of every item: `item_changes`, one row per catalogue change.
const HISTORY: History = History {
    changes: "item_changes",
    subjects: "items",
    key: "sku",
};

/// What an item change recorded beside who and when.
struct Recorded {
    kind: ChangeKind,
    /// Stock changes: the delta, the reason and the stock after it.
    delta: Option<i64>,
    reason: Option<String>,
    stock_after: Option<i64>,
    /// Creations and updates: the name and category set.
    name: Option<String>,
    category: Option<String>,
}

impl Payload for Recorded {
    const COLUMNS: &'static [&'static str] =
        &["kind", "delta", "reason", "stock_after", "name", "category"];

    fn bind<'q>(&self, query: AnyQuery<'q>) -> anyhow::Result<AnyQuery<'q>> {
        Ok(query
            .bind(self.kind.as_str())
            .bind(self.delta)
            .bind(self.reason.clone())
            .bind(self.stock_after)
            .bind(self.name.clone())
            .bind(self.category.clone()))
    }

    fn from_row(row: &AnyRow) -> anyhow::Result<Self> {
        Ok(Self {
            kind: ChangeKind::parse(&row.try_get::<String, _>("kind")?)?,
            delta: row.try_get("delta")?,
            reason: row.try_get("reason")?,
            stock_after: row.try_get("stock_after")?,
            name: row.try_get("name")?,
            category: row.try_get("category")?,
        })
    }
}

impl Store {
    /// Writes a history row. Called after the change has written the item's
    /// row, which serialises changes to one item: the next `seq` is free.
    pub(super) async fn record(
        tx: &mut AnyConnection,
        change: &NewChange<'_>,
    ) -> anyhow::Result<()> {
        let recorded = Recorded {
            kind: change.kind,
            delta: change.adjustment.map(|(a, _)| a.delta()),
            reason: change.adjustment.map(|(a, _)| a.reason().to_owned()),
            stock_after: change.adjustment.map(|(_, after)| after),
            name: change.details.map(|d| d.name.as_str().to_owned()),
            category: change.details.map(|d| d.category.as_str().to_owned()),
        };
        HISTORY
            .record(
                tx,
                change.sku.as_str(),
                change.at,
                change.actor.as_str(),
                &recorded,
            )
            .await
            .context("recording an item change")
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
        let changes = HISTORY
            .read::<Recorded>(&mut conn, sku.as_str(), limit)
            .await
            .with_context(|| format!("reading the history of {sku}"))?;
        Ok(changes.map(|changes| {
            changes
                .into_iter()
                .map(|c| ItemChange {
                    at: c.at,
                    actor: c.actor,
                    kind: c.payload.kind,
                    delta: c.payload.delta,
                    reason: c.payload.reason,
                    stock_after: c.payload.stock_after,
                    name: c.payload.name,
                    category: c.payload.category,
                })
                .collect()
        }))
    }
}
