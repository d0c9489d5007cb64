//! The orders: recording a new one (idempotency keys), completing, ending and
//! cancelling it with its status change's event, and reading them back.

use anyhow::Context;
use shared_db::{AnyQuery, placeholders};
use shared_events::Inbox;
use shared_vocabulary::money::Money;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Connection, Row};

use super::{Handled, ORDER_COLUMNS, Recorded, Store, StoredLine};
use std::collections::HashMap;

use crate::domain::{
    CustomerId, IdempotencyKey, NewOrder, Order, OrderId, OrderLine, OrderStatus, PricingSource,
    Sku, UnitPrice,
};
use crate::history::{OrderPage, OrderQuery};

/// A pending order's completion: its status, prices and total
/// ([`completion`] binds its [`COMPLETE_PARAMS`] parameters).
const COMPLETE: &str = "UPDATE orders SET status = $1, pricing = $2, currency = $3, \
     total_cents = $4, lines = $5, updated_at = $6 WHERE id = $7 AND status = 'pending'";

const COMPLETE_PARAMS: usize = 7;

/// Binds [`COMPLETE`]'s parameters for `order`, whose lines are `lines`.
fn completion<'q>(order: &'q Order, lines: String) -> impl FnOnce(AnyQuery<'q>) -> AnyQuery<'q> {
    move |query| {
        query
            .bind(order.status.as_str())
            .bind(order.pricing.map(PricingSource::as_str))
            .bind(order.currency.as_deref())
            .bind(order.total.map(Money::cents))
            .bind(lines)
            .bind(order.updated_at)
            .bind(order.id.as_str())
    }
}

fn lines_json(lines: &[StoredLine]) -> anyhow::Result<String> {
    serde_json::to_string(lines).context("encoding an order's lines")
}

/// An order from its row. A value the code does not know (a status, a
/// pricing source, a malformed id or line) is an error naming the order,
/// never read as something else.
fn order_from(row: &AnyRow) -> anyhow::Result<Order> {
    let id: String = row.try_get("id")?;
    read_order(row, &id).with_context(|| format!("order {id} cannot be read"))
}

fn read_order(row: &AnyRow, id: &str) -> anyhow::Result<Order> {
    let lines: Vec<StoredLine> = match row.try_get::<Option<String>, _>("lines")? {
        Some(json) => serde_json::from_str(&json).context("unreadable lines")?,
        None => Vec::new(),
    };
    let pricing: Option<String> = row.try_get("pricing")?;
    Ok(Order {
        id: OrderId::parse(id).context("not an order id")?,
        customer_id: CustomerId::parse(&row.try_get::<String, _>("customer_id")?)?,
        status: OrderStatus::parse(&row.try_get::<String, _>("status")?)?,
        pricing: pricing.as_deref().map(PricingSource::parse).transpose()?,
        currency: row.try_get("currency")?,
        total: row
            .try_get::<Option<i64>, _>("total_cents")?
            .map(Money::from_cents),
        lines: lines
            .into_iter()
            .map(OrderLine::try_from)
            .collect::<anyhow::Result<_>>()?,
        fingerprint: row.try_get("request_fingerprint")?,
        failure_reason: row.try_get("failure_reason")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Records a new `pending` order with its lines, unless `key` was used
    /// before: then nothing is written and the first order comes back. The
    /// UNIQUE constraint on the key decides, so two replicas racing on the
    /// same key cannot both win.
    ///
    /// # Errors
    /// On a database error.
    #[tracing::instrument(skip_all, fields(order_id = %id))]
    pub async fn record_pending(
        &self,
        id: &OrderId,
        order: &NewOrder,
        key: Option<&IdempotencyKey>,
        now: i64,
    ) -> anyhow::Result<Recorded> {
        let lines: Vec<StoredLine> = order
            .lines
            .iter()
            .map(|(sku, quantity)| StoredLine {
                sku: sku.as_str().to_owned(),
                name: None,
                quantity: quantity.get(),
                unit_price_cents: None,
                discount_percent: None,
                line_total_cents: None,
            })
            .collect();
        let lines = lines_json(&lines)?;
        // Repeatable: a second run after a lost answer finds its own row.
        let inserted = self
            .db
            .repeatable(async |conn| {
                let insert = sqlx::query(
                    "INSERT INTO orders (id, customer_id, status, lines, idempotency_key, \
                     request_fingerprint, created_at, updated_at) \
                     VALUES ($1, $2, 'pending', $3, $4, $5, $6, $6) ON CONFLICT DO NOTHING",
                )
                .bind(id.as_str())
                .bind(order.customer_id.as_str())
                .bind(lines.as_str())
                .bind(key.map(IdempotencyKey::as_str))
                .bind(order.fingerprint())
                .bind(now);
                Ok(insert.execute(&mut **conn).await?.rows_affected())
            })
            .await?;
        if inserted == 0 {
            // Without a key only the id can conflict: this order's own row,
            // written by a first run whose answer was lost.
            let Some(key) = key else {
                return Ok(Recorded::New);
            };
            let existing = self
                .find_by_key(key)
                .await?
                .context("the conflicting order is not there")?;
            if existing.id == *id {
                return Ok(Recorded::New);
            }
            return Ok(Recorded::Existing(existing));
        }
        Ok(Recorded::New)
    }

    /// Records `order` (no longer pending: its status, prices and total) over
    /// its pending row, with its event, in one transaction; then, for live
    /// prices, remembers them as the last seen for each sku as of `priced_at`
    /// (when pricing was asked; a price seen later is kept). The prices are a
    /// statement of their own, after the commit: every order of an item
    /// writes that item's row, and on PostgreSQL a row written inside the
    /// order's transaction stays locked across its remaining round trips, so
    /// the orders of a popular item would queue on it.
    ///
    /// # Errors
    /// On a database error, or when the order is no longer pending.
    #[tracing::instrument(skip_all, fields(order_id = order.id.as_str()))]
    pub async fn complete(
        &self,
        order: &Order,
        live_prices: &HashMap<Sku, UnitPrice>,
        priced_at: i64,
    ) -> anyhow::Result<()> {
        let id = order.id.as_str();
        let lines: Vec<StoredLine> = order.lines.iter().map(StoredLine::from).collect();
        let lines = lines_json(&lines)?;
        // With its event, the update is one trip to the database; alone, one
        // statement is a transaction of its own. Either way no BEGIN and
        // COMMIT round trips while the order's row is locked.
        let event = if self.outbox.is_on() {
            (self.event)(order)?
        } else {
            None
        };
        // Repeatable: the update (and its event) happen only to a pending
        // order, and a second run after a lost answer finds it done.
        let completed = self
            .db
            .repeatable(async |conn| match &event {
                Some(event) => {
                    let bind = completion(order, lines.clone());
                    let outbox = &self.outbox;
                    outbox
                        .change_with_event(conn, COMPLETE, COMPLETE_PARAMS, bind, event)
                        .await
                }
                None => {
                    let update = completion(order, lines.clone())(sqlx::query(COMPLETE));
                    Ok(update.execute(&mut **conn).await?.rows_affected() == 1)
                }
            })
            .await?;
        if !completed && self.get(&order.id).await?.map(|o| o.status) != Some(order.status) {
            anyhow::bail!("order {id} is no longer pending");
        }
        let mut conn = self.db.write().await?;
        self.remember_live_prices(&mut conn, live_prices, priced_at)
            .await;
        Ok(())
    }

    /// Ends a pending order as `rejected` or `failed`, with the reason;
    /// returns whether it did (false: it was no longer pending, e.g. another
    /// replica resolved it first).
    ///
    /// # Errors
    /// On a database error.
    pub async fn end(
        &self,
        id: &OrderId,
        status: OrderStatus,
        reason: &str,
        now: i64,
    ) -> anyhow::Result<bool> {
        let ended = self.end_handling(id, status, reason, now, None).await?;
        Ok(ended == Some(true))
    }

    /// [`Store::end`], recording `handled` in the inbox in the same
    /// transaction: `None` when the inbox had it already (nothing changed).
    ///
    /// # Errors
    /// On a database error.
    pub async fn end_handling(
        &self,
        id: &OrderId,
        status: OrderStatus,
        reason: &str,
        now: i64,
        handled: Option<Handled<'_>>,
    ) -> anyhow::Result<Option<bool>> {
        let sql = format!(
            "UPDATE orders SET status = $1, failure_reason = $2, updated_at = $3 \
             WHERE id = $4 AND status = 'pending' RETURNING {ORDER_COLUMNS}"
        );
        let update = sqlx::query(AssertSqlSafe(sql))
            .bind(status.as_str())
            .bind(reason)
            .bind(now)
            .bind(id.as_str());
        self.change_status(update, handled).await
    }

    /// Marks an order that holds stock as cancelled; returns whether it did.
    ///
    /// # Errors
    /// On a database error.
    pub async fn cancel(&self, id: &OrderId, now: i64) -> anyhow::Result<bool> {
        let sql = format!(
            "UPDATE orders SET status = 'cancelled', updated_at = $1 \
             WHERE id = $2 AND status IN ('confirmed', 'pending_pricing') \
             RETURNING {ORDER_COLUMNS}"
        );
        let update = sqlx::query(AssertSqlSafe(sql)).bind(now).bind(id.as_str());
        Ok(self.change_status(update, None).await? == Some(true))
    }

    /// Runs `update` (a conditional status change returning the order's
    /// columns) and writes the event of the order it changed, and `handled`
    /// in the inbox, in one transaction; returns whether it changed an order,
    /// `None` when the inbox had `handled` already (then nothing changed).
    async fn change_status(
        &self,
        update: AnyQuery<'_>,
        handled: Option<Handled<'_>>,
    ) -> anyhow::Result<Option<bool>> {
        let mut conn = self.db.write().await?;
        let mut tx = conn.begin().await?;
        if let Some(Handled { consumer, event_id }) = handled
            && !Inbox::first_time(&mut tx, consumer, event_id).await?
        {
            return Ok(None);
        }
        let Some(row) = update.fetch_optional(&mut *tx).await? else {
            tx.commit().await?;
            return Ok(Some(false));
        };
        self.append_event(&mut tx, &order_from(&row)?).await?;
        tx.commit().await?;
        self.outbox.committed();
        Ok(Some(true))
    }

    /// Ids of orders still `pending` that were created before `before`.
    ///
    /// # Errors
    /// On a database error.
    pub async fn pending_before(&self, before: i64, limit: u32) -> anyhow::Result<Vec<OrderId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM orders WHERE status = 'pending' AND created_at < $1 \
             ORDER BY created_at LIMIT $2",
        )
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.db.read().await?)
        .await?;
        ids.iter()
            .map(|id| OrderId::parse(id).with_context(|| format!("order {id:?}: not an order id")))
            .collect()
    }

    /// # Errors
    /// On a database error.
    pub async fn get(&self, id: &OrderId) -> anyhow::Result<Option<Order>> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1");
        let row = self
            .db
            .reading(async |conn| {
                let select = sqlx::query(AssertSqlSafe(sql.as_str())).bind(id.as_str());
                Ok(select.fetch_optional(&mut **conn).await?)
            })
            .await?;
        row.as_ref().map(order_from).transpose()
    }

    /// One page of a customer's orders, newest first by `(created_at, id)`:
    /// those in the query's statuses (all when it names none), older than its
    /// cursor, at most its limit; and the cursor of the next page, if any.
    ///
    /// Keyset paging on the index `orders_by_customer_newest` (customer_id,
    /// created_at DESC, id DESC): the row-value comparison is a range on that
    /// index on both SQLite and PostgreSQL, so a deep page costs what the
    /// first does. A status filter is checked on the rows the index yields.
    /// One row more than the limit is read, to know whether another page
    /// follows ([`OrderPage::from_rows`]).
    ///
    /// # Errors
    /// On a database error, or a stored order id that is not a UUID.
    #[tracing::instrument(skip_all, fields(customer_id = query.customer_id().as_str()))]
    pub async fn list_for_customer(&self, query: &OrderQuery) -> anyhow::Result<OrderPage> {
        let statuses = query.statuses();
        let mut sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE customer_id = $1");
        let mut next = 2;
        if !statuses.is_empty() {
            sql.push_str(&format!(
                " AND status IN ({})",
                placeholders(next, statuses.len())
            ));
            next += statuses.len();
        }
        if query.cursor().is_some() {
            sql.push_str(&format!(" AND (created_at, id) < (${next}, ${})", next + 1));
            next += 2;
        }
        sql.push_str(&format!(" ORDER BY created_at DESC, id DESC LIMIT ${next}"));
        // Only `$n` placeholders were formatted into `sql`; every value is bound.
        let mut select = sqlx::query(AssertSqlSafe(sql)).bind(query.customer_id().as_str());
        for status in statuses {
            select = select.bind(status.as_str());
        }
        if let Some(cursor) = query.cursor() {
            select = select.bind(cursor.created_at()).bind(cursor.id());
        }
        let rows = select
            .bind(i64::from(query.limit()) + 1)
            .fetch_all(&mut *self.db.read().await?)
            .await?;
        let orders = rows.iter().map(order_from).collect::<anyhow::Result<_>>()?;
        Ok(OrderPage::from_rows(orders, query.limit()))
    }

    async fn find_by_key(&self, key: &IdempotencyKey) -> anyhow::Result<Option<Order>> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE idempotency_key = $1");
        let row = self
            .db
            .reading(async |conn| {
                let select = sqlx::query(AssertSqlSafe(sql.as_str())).bind(key.as_str());
                Ok(select.fetch_optional(&mut **conn).await?)
            })
            .await?;
        row.as_ref().map(order_from).transpose()
    }
}
