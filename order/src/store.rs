//! All of order's SQL: orders, their lines, and the last price seen per sku.

use std::collections::HashMap;

use anyhow::Context;
use shared::config::DatabaseConfig;
use shared::db::Database;
use shared::money::Money;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::domain::{
    IdempotencyKey, NewOrder, Order, OrderLine, OrderStatus, PricingSource, UnitPrice,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

const ORDER_COLUMNS: &str = "id, customer_id, status, pricing, currency, total_cents, \
     request_fingerprint, failure_reason, created_at, updated_at";

/// Order's data. Cheap to clone (the pools are shared).
#[derive(Clone)]
pub struct Store {
    db: Database,
}

/// What recording a new order found.
#[derive(Debug)]
pub enum Recorded {
    /// A new pending order under the given id.
    New,
    /// The idempotency key was used before: the first order.
    Existing(Order),
}

/// `$first, $first+1, …` for `count` parameters.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn order_from(row: &AnyRow) -> Result<Order, sqlx::Error> {
    Ok(Order {
        id: row.try_get("id")?,
        customer_id: row.try_get("customer_id")?,
        status: OrderStatus::from_db(row.try_get::<String, _>("status")?.as_str()),
        pricing: row
            .try_get::<Option<String>, _>("pricing")?
            .as_deref()
            .and_then(PricingSource::from_db),
        currency: row.try_get("currency")?,
        total: row
            .try_get::<Option<i64>, _>("total_cents")?
            .map(Money::from_cents),
        lines: Vec::new(),
        fingerprint: row.try_get("request_fingerprint")?,
        failure_reason: row.try_get("failure_reason")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn line_from(row: &AnyRow) -> Result<(String, OrderLine), sqlx::Error> {
    let quantity: i64 = row.try_get("quantity")?;
    let discount: Option<i64> = row.try_get("discount_percent")?;
    Ok((
        row.try_get("order_id")?,
        OrderLine {
            sku: row.try_get("sku")?,
            name: row.try_get("name")?,
            quantity: u32::try_from(quantity).unwrap_or(u32::MAX),
            unit_price: row
                .try_get::<Option<i64>, _>("unit_price_cents")?
                .map(Money::from_cents),
            discount_percent: discount.map(|d| u8::try_from(d).unwrap_or(100)),
            line_total: row
                .try_get::<Option<i64>, _>("line_total_cents")?
                .map(Money::from_cents),
        },
    ))
}

impl Store {
    /// Connects and brings the schema up to date.
    ///
    /// # Errors
    /// When the database cannot be reached or a migration fails.
    pub async fn connect(config: &DatabaseConfig) -> anyhow::Result<Self> {
        let db = Database::connect(config).await?;
        db.migrate(&MIGRATOR)
            .await
            .context("migrating the order store")?;
        Ok(Self { db })
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Records a new `pending` order with its lines, unless `key` was used
    /// before: then nothing is written and the first order comes back. The
    /// UNIQUE constraint on the key decides, so two replicas racing on the
    /// same key cannot both win.
    ///
    /// # Errors
    /// On a database error.
    #[tracing::instrument(skip_all, fields(order_id = id))]
    pub async fn record_pending(
        &self,
        id: &str,
        order: &NewOrder,
        key: Option<&IdempotencyKey>,
        now: i64,
    ) -> anyhow::Result<Recorded> {
        let mut tx = self.db.writes().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO orders (id, customer_id, status, idempotency_key, request_fingerprint, \
             created_at, updated_at) VALUES ($1, $2, 'pending', $3, $4, $5, $5) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(order.customer_id.as_str())
        .bind(key.map(IdempotencyKey::as_str))
        .bind(order.fingerprint())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            let key = key.context("an insert without a key cannot conflict")?;
            let existing = self
                .find_by_key(key)
                .await?
                .context("the conflicting order is not there")?;
            return Ok(Recorded::Existing(existing));
        }
        for (line_no, (sku, quantity)) in order.lines.iter().enumerate() {
            sqlx::query(
                "INSERT INTO order_items (order_id, line_no, sku, quantity) VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(line_no as i64)
            .bind(sku.as_str())
            .bind(i64::from(*quantity))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Recorded::New)
    }

    async fn find_by_key(&self, key: &IdempotencyKey) -> anyhow::Result<Option<Order>> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE idempotency_key = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(key.as_str())
            .fetch_optional(self.db.reads())
            .await?;
        match row {
            None => Ok(None),
            Some(row) => Ok(self.with_lines(vec![order_from(&row)?]).await?.pop()),
        }
    }

    /// Records `order` (no longer pending: its status, prices and total) over
    /// its pending row and, for live prices, remembers them as the last seen
    /// for each sku, all in one transaction.
    ///
    /// # Errors
    /// On a database error, or when the order is no longer pending.
    #[tracing::instrument(skip_all, fields(order_id = order.id.as_str()))]
    pub async fn complete(
        &self,
        order: &Order,
        live_prices: &HashMap<String, UnitPrice>,
    ) -> anyhow::Result<()> {
        let id = order.id.as_str();
        let mut tx = self.db.writes().begin().await?;
        let updated = sqlx::query(
            "UPDATE orders SET status = $1, pricing = $2, currency = $3, total_cents = $4, \
             updated_at = $5 WHERE id = $6 AND status = 'pending'",
        )
        .bind(order.status.as_str())
        .bind(order.pricing.map(PricingSource::as_str))
        .bind(order.currency.as_deref())
        .bind(order.total.map(Money::cents))
        .bind(order.updated_at)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        anyhow::ensure!(updated == 1, "order {id} is no longer pending");
        for (line_no, line) in order.lines.iter().enumerate() {
            sqlx::query(
                "UPDATE order_items SET name = $1, unit_price_cents = $2, discount_percent = $3, \
                 line_total_cents = $4 WHERE order_id = $5 AND line_no = $6",
            )
            .bind(line.name.as_deref())
            .bind(line.unit_price.map(Money::cents))
            .bind(line.discount_percent.map(i64::from))
            .bind(line.line_total.map(Money::cents))
            .bind(id)
            .bind(line_no as i64)
            .execute(&mut *tx)
            .await?;
        }
        for (sku, price) in live_prices {
            sqlx::query(
                "INSERT INTO last_prices (sku, unit_price_cents, discount_percent, currency, seen_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sku) DO UPDATE SET \
                 unit_price_cents = excluded.unit_price_cents, \
                 discount_percent = excluded.discount_percent, \
                 currency = excluded.currency, seen_at = excluded.seen_at",
            )
            .bind(sku)
            .bind(price.unit.cents())
            .bind(i64::from(price.discount_percent))
            .bind(&price.currency)
            .bind(order.updated_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Ends a pending order as `rejected` or `failed`, with the reason.
    ///
    /// # Errors
    /// On a database error.
    pub async fn fail(
        &self,
        id: &str,
        status: OrderStatus,
        reason: &str,
        now: i64,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE orders SET status = $1, failure_reason = $2, updated_at = $3 \
             WHERE id = $4 AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(reason)
        .bind(now)
        .bind(id)
        .execute(self.db.writes())
        .await?;
        Ok(())
    }

    /// Marks an order that holds stock as cancelled; returns whether it did.
    ///
    /// # Errors
    /// On a database error.
    pub async fn cancel(&self, id: &str, now: i64) -> anyhow::Result<bool> {
        let updated = sqlx::query(
            "UPDATE orders SET status = 'cancelled', updated_at = $1 \
             WHERE id = $2 AND status IN ('confirmed', 'pending_pricing')",
        )
        .bind(now)
        .bind(id)
        .execute(self.db.writes())
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// Ids of orders still `pending` that were created before `before`.
    ///
    /// # Errors
    /// On a database error.
    pub async fn pending_before(&self, before: i64, limit: u32) -> anyhow::Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM orders WHERE status = 'pending' AND created_at < $1 \
             ORDER BY created_at LIMIT $2",
        )
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(self.db.reads())
        .await?)
    }

    /// The last price seen for each of `skus` that was ever priced.
    ///
    /// # Errors
    /// On a database error.
    pub async fn last_prices(&self, skus: &[&str]) -> anyhow::Result<HashMap<String, UnitPrice>> {
        let sql = format!(
            "SELECT sku, unit_price_cents, discount_percent, currency FROM last_prices \
             WHERE sku IN ({})",
            placeholders(1, skus.len())
        );
        // Only `$n` placeholders were formatted into `sql`; every value is bound.
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for sku in skus {
            query = query.bind(*sku);
        }
        let rows = query.fetch_all(self.db.reads()).await?;
        rows.iter()
            .map(|row| {
                let discount: i64 = row.try_get("discount_percent")?;
                Ok((
                    row.try_get("sku")?,
                    UnitPrice {
                        unit: Money::from_cents(row.try_get("unit_price_cents")?),
                        discount_percent: u8::try_from(discount).unwrap_or(0),
                        currency: row.try_get("currency")?,
                    },
                ))
            })
            .collect()
    }

    /// # Errors
    /// On a database error.
    pub async fn get(&self, id: &str) -> anyhow::Result<Option<Order>> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.db.reads())
            .await?;
        match row {
            None => Ok(None),
            Some(row) => Ok(self.with_lines(vec![order_from(&row)?]).await?.pop()),
        }
    }

    /// A customer's orders, newest first.
    ///
    /// # Errors
    /// On a database error.
    pub async fn list_for_customer(
        &self,
        customer_id: &str,
        limit: u32,
    ) -> anyhow::Result<Vec<Order>> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE customer_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(customer_id)
            .bind(i64::from(limit))
            .fetch_all(self.db.reads())
            .await?;
        let orders = rows.iter().map(order_from).collect::<Result<Vec<_>, _>>()?;
        self.with_lines(orders).await
    }

    /// Fills in the lines of `orders` with one query.
    async fn with_lines(&self, mut orders: Vec<Order>) -> anyhow::Result<Vec<Order>> {
        if orders.is_empty() {
            return Ok(orders);
        }
        let sql = format!(
            "SELECT order_id, sku, name, quantity, unit_price_cents, discount_percent, \
             line_total_cents FROM order_items WHERE order_id IN ({}) ORDER BY order_id, line_no",
            placeholders(1, orders.len())
        );
        // Only `$n` placeholders were formatted into `sql`; every value is bound.
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for order in &orders {
            query = query.bind(order.id.clone());
        }
        let mut by_order: HashMap<String, Vec<OrderLine>> = HashMap::new();
        for row in query.fetch_all(self.db.reads()).await? {
            let (order_id, line) = line_from(&row)?;
            by_order.entry(order_id).or_default().push(line);
        }
        for order in &mut orders {
            order.lines = by_order.remove(&order.id).unwrap_or_default();
        }
        Ok(orders)
    }
}
