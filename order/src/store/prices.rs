//! The last price seen per sku (order's fallback when pricing is away),
//! written as orders see live prices and as price events arrive.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use shared_db::placeholders;
use shared_events::Inbox;
use shared_vocabulary::money::Money;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Row};

use super::{Handled, Store};
use crate::domain::{Sku, UnitPrice};

/// How often a live price that has not changed is written again as the
/// last seen.
const REWRITE_UNCHANGED_PRICE_AFTER: Duration = Duration::from_secs(1);

/// The live prices this process last wrote as the last seen, and when. Every
/// order of an item sees that item's price, and writing the same price over
/// itself a thousand times a second is a thousand writes of one row, which
/// queue on its lock: an unchanged price is written again only after
/// [`REWRITE_UNCHANGED_PRICE_AFTER`]. A changed one is written at once. So
/// the stored price trails the live one by at most that long, as seen by
/// this process (another replica, or a price event, may have written in
/// between: the next write here settles it).
#[derive(Default)]
pub(super) struct WrittenPrices(Mutex<HashMap<Sku, (UnitPrice, Instant)>>);

impl WrittenPrices {
    /// The prices of `live` that are due for writing at `now`.
    fn due(&self, live: &HashMap<Sku, UnitPrice>, now: Instant) -> HashMap<Sku, UnitPrice> {
        let written = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        live.iter()
            .filter(|(sku, price)| match written.get(*sku) {
                Some((same, at)) => {
                    same != *price || now.duration_since(*at) >= REWRITE_UNCHANGED_PRICE_AFTER
                }
                None => true,
            })
            .map(|(sku, price)| (sku.clone(), price.clone()))
            .collect()
    }

    fn wrote(&self, prices: HashMap<Sku, UnitPrice>, at: Instant) {
        let mut written = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        written.extend(prices.into_iter().map(|(sku, price)| (sku, (price, at))));
    }
}

/// A last-seen price from its row; a discount that is not a percentage is
/// an error naming the sku, never read as no discount.
fn last_price_from(row: &AnyRow) -> anyhow::Result<(Sku, UnitPrice)> {
    let sku: String = row.try_get("sku")?;
    let discount: i64 = row.try_get("discount_percent")?;
    let price = UnitPrice {
        unit: Money::from_cents(row.try_get("unit_price_cents")?),
        discount_percent: u8::try_from(discount)
            .ok()
            .filter(|d| *d <= 100)
            .with_context(|| {
                format!("last price of {sku}: discount {discount} is not a percentage")
            })?,
        currency: row.try_get("currency")?,
    };
    Ok((Sku::parse(&sku)?, price))
}

/// Upserts the last price seen for each sku, in one statement, unless a
/// price seen later is already there.
async fn upsert_prices(
    conn: &mut AnyConnection,
    prices: &HashMap<Sku, UnitPrice>,
    seen_at: i64,
) -> anyhow::Result<()> {
    // Sorted, so that two orders upserting the same skus on PostgreSQL
    // take the row locks in the same order and cannot deadlock.
    let mut prices: Vec<(&Sku, &UnitPrice)> = prices.iter().collect();
    prices.sort_by_key(|(sku, _)| *sku);
    let rows: Vec<String> = (0..prices.len())
        .map(|n| format!("({})", placeholders(n * 5 + 1, 5)))
        .collect();
    let sql = format!(
        "INSERT INTO last_prices (sku, unit_price_cents, discount_percent, currency, seen_at) \
         VALUES {} ON CONFLICT (sku) DO UPDATE SET \
         unit_price_cents = excluded.unit_price_cents, \
         discount_percent = excluded.discount_percent, \
         currency = excluded.currency, seen_at = excluded.seen_at \
         WHERE last_prices.seen_at <= excluded.seen_at",
        rows.join(", ")
    );
    // Only `$n` placeholders were formatted into `sql`; every value is bound.
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for (sku, price) in prices {
        query = query
            .bind(sku.as_str())
            .bind(price.unit.cents())
            .bind(i64::from(price.discount_percent))
            .bind(&price.currency)
            .bind(seen_at);
    }
    query.execute(conn).await?;
    Ok(())
}

impl Store {
    /// Writes the live prices due for writing (see [`WrittenPrices`]) as the
    /// last seen. The order stands whatever happens here: the prices only
    /// serve as a fallback, and the next order or price event writes them.
    pub(super) async fn remember_live_prices(
        &self,
        conn: &mut AnyConnection,
        live: &HashMap<Sku, UnitPrice>,
        priced_at: i64,
    ) {
        let now = Instant::now();
        let due = self.written.due(live, now);
        if due.is_empty() {
            return;
        }
        match upsert_prices(conn, &due, priced_at).await {
            Ok(()) => self.written.wrote(due, now),
            Err(e) => tracing::warn!(error = %e, "remembering the order's live prices failed"),
        }
    }

    /// Takes `prices`, seen at `seen_at`, as the last seen (unless one seen
    /// later is there), recording `handled` in the inbox in the same
    /// transaction; `false` when the inbox had it already (nothing changed).
    ///
    /// # Errors
    /// On a database error.
    pub async fn remember_prices(
        &self,
        prices: &HashMap<Sku, UnitPrice>,
        seen_at: i64,
        handled: Handled<'_>,
    ) -> anyhow::Result<bool> {
        let mut conn = self.db.write().await?;
        let mut tx = conn.begin().await?;
        if !Inbox::first_time(&mut tx, handled.consumer, handled.event_id).await? {
            return Ok(false);
        }
        if !prices.is_empty() {
            upsert_prices(&mut tx, prices, seen_at).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The last price seen for each of `skus` that was ever priced.
    ///
    /// # Errors
    /// On a database error, or a stored price the code cannot read.
    pub async fn last_prices(
        &self,
        skus: impl ExactSizeIterator<Item = &Sku>,
    ) -> anyhow::Result<HashMap<Sku, UnitPrice>> {
        let sql = format!(
            "SELECT sku, unit_price_cents, discount_percent, currency FROM last_prices \
             WHERE sku IN ({})",
            placeholders(1, skus.len())
        );
        let skus: Vec<&Sku> = skus.collect();
        let rows = self
            .db
            .reading(async |conn| {
                // Only `$n` placeholders were formatted into `sql`; every value is bound.
                let mut query = sqlx::query(AssertSqlSafe(sql.as_str()));
                for sku in &skus {
                    query = query.bind(sku.as_str());
                }
                Ok(query.fetch_all(&mut **conn).await?)
            })
            .await?;
        rows.iter().map(last_price_from).collect()
    }
}
