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

use sqlx::{AnyConnection, AssertSqlSafe};
use tokio::sync::Notify;

use super::envelope::CloudEvent;
use shared_db::{AnyQuery, Conn, placeholders};
use shared_http::{telemetry, timestamp};

/// The outbox's columns, in the order [`Outbox::bind_row`] binds them.
const COLUMNS: &str = "id, subject, event, traceparent, created_at";

/// Nanoseconds per step of the 12 bits of sub-millisecond time in event ids
/// (RFC 9562's method 3, as the `uuid` crate scales them: 0..=4081).
const SUB_MS_FACTOR: u64 = 999_999 / 4096 + 1;

/// Most events [`Outbox::append_all`] writes in one statement (5 parameters
/// each: well within SQLite's and PostgreSQL's limits).
const APPEND_CHUNK: usize = 1_000;

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
        let insert = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO outbox ({COLUMNS}) VALUES ({})",
            placeholders(1, 5)
        )));
        Self::bind_row(insert, event)?.execute(tx).await?;
        Ok(())
    }

    /// Writes `events` as part of the open transaction `tx`: one statement
    /// (one trip to the database) for up to [`APPEND_CHUNK`] of them.
    ///
    /// # Errors
    /// When the rows cannot be written (the caller's transaction then fails).
    pub async fn append_all(
        &self,
        tx: &mut AnyConnection,
        events: &[CloudEvent],
    ) -> anyhow::Result<()> {
        if !self.on {
            return Ok(());
        }
        for chunk in events.chunks(APPEND_CHUNK) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| format!("({})", placeholders(i * 5 + 1, 5)))
                .collect();
            // Only `$n` placeholders are formatted in; every value is bound.
            let mut insert = sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO outbox ({COLUMNS}) VALUES {}",
                rows.join(", ")
            )));
            for event in chunk {
                insert = Self::bind_row(insert, event)?;
            }
            insert.execute(&mut *tx).await?;
        }
        Ok(())
    }

    /// On PostgreSQL, an `INSERT` (for a `WITH` of the statement that makes
    /// the change) writing events whose `data` only that statement knows
    /// (what a row holds after it): one trip for the change and all its
    /// events. `source` is a query of the statement's (a `WITH` name) with
    /// the columns `event_key` (text) and `fill` (jsonb); for each of its
    /// rows, the template of that key (see [`Outbox::templates`]) is written
    /// with `fill`'s members set in its `data`. `$first` is the templates,
    /// `$first + 1` and `$first + 2` the trace context and the time, bound by
    /// [`Outbox::bind_templates`].
    ///
    /// Each event gets its id here, a UUIDv7 of the database's clock read
    /// once `source`'s row exists (so after the change locked it), with the
    /// sub-millisecond time in the 12 bits after the milliseconds as
    /// [`CloudEvent::new`]'s ids: the events of one aggregate sort in the
    /// order their changes took its lock, whichever made their ids.
    pub fn completed_insert_sql(source: &str, first: usize) -> String {
        let (templates, trace, now) = (first, first + 1, first + 2);
        // `OFFSET 0` keeps the clock and the random bits read once per row
        // (the planner does not fold the subquery into its users).
        format!(
            "INSERT INTO outbox ({COLUMNS}) \
             SELECT e.id, e.event->>'type', \
                 jsonb_set(jsonb_set(e.event, '{{id}}', to_jsonb(e.id)), \
                     '{{data}}', (e.event->'data') || e.fill)::text, ${trace}, ${now} \
             FROM (SELECT r.event, r.fill, \
                     (lpad(to_hex(r.us / 1000), 12, '0') || '7' \
                      || lpad(to_hex((r.us % 1000) * 1000 / {SUB_MS_FACTOR}), 3, '0') \
                      || right(replace(r.random, '-', ''), 16))::uuid::text AS id \
                 FROM (SELECT t.event, f.fill, \
                         (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS us, \
                         gen_random_uuid()::text AS random \
                     FROM jsonb_to_recordset(${templates}::jsonb) AS t(key text, event jsonb) \
                     JOIN {source} f ON f.event_key = t.key OFFSET 0) r) e"
        )
    }

    /// The templates of [`Outbox::completed_insert_sql`], each event with
    /// its key, as JSON: none (nothing written) while events are off.
    ///
    /// # Errors
    /// When an event cannot be serialised.
    pub fn templates<'e>(
        &self,
        events: impl IntoIterator<Item = (&'e str, CloudEvent)>,
    ) -> anyhow::Result<String> {
        if !self.on {
            return Ok("[]".to_owned());
        }
        let all: Vec<serde_json::Value> = events
            .into_iter()
            .map(|(key, event)| serde_json::json!({"key": key, "event": event}))
            .collect();
        Ok(serde_json::to_string(&all)?)
    }

    /// Binds `templates` and the current trace context and time, the three
    /// parameters of [`Outbox::completed_insert_sql`], after `query`'s.
    pub fn bind_templates<'q>(query: AnyQuery<'q>, templates: String) -> AnyQuery<'q> {
        query
            .bind(templates)
            .bind(telemetry::current_traceparent())
            .bind(timestamp::now_ms())
    }

    /// Applies `change` and, if it changed a row, writes `event` with it:
    /// atomically, and in one trip to the database where a transaction takes
    /// four (BEGIN, the change, the row, COMMIT). `change` is one UPDATE or
    /// INSERT of at most one row, without RETURNING, written in the code
    /// (never built from input), whose parameters `$1`..`$params` `bind` binds. Returns whether the row changed. With
    /// the outbox off, only the change is made.
    ///
    /// On PostgreSQL it is one statement (the change in a `WITH`, the row
    /// inserted for each row it returns); on SQLite, whose `WITH` cannot
    /// write, one script (see [`Conn::run_script`]).
    ///
    /// # Errors
    /// On a database error; nothing is written then.
    pub async fn change_with_event<'q>(
        &self,
        conn: &mut Conn,
        change: &'static str,
        params: usize,
        bind: impl FnOnce(AnyQuery<'q>) -> AnyQuery<'q>,
        event: &CloudEvent,
    ) -> anyhow::Result<bool> {
        if !self.on {
            let query = bind(sqlx::query(change));
            return Ok(query.execute(&mut **conn).await?.rows_affected() == 1);
        }
        let row = placeholders(params + 1, 5);
        let changed = if conn.is_sqlite() {
            // changes(): the rows the last INSERT, UPDATE or DELETE changed.
            let script = format!(
                "BEGIN IMMEDIATE; {change}; \
                 INSERT INTO outbox ({COLUMNS}) SELECT {row} WHERE changes() = 1; \
                 SELECT changes() AS written; COMMIT"
            );
            let query = Self::bind_row(bind(sqlx::query(AssertSqlSafe(script))), event)?;
            let rows = conn.run_script(query).await?;
            let written: i64 = match rows.first() {
                Some(row) => sqlx::Row::try_get(row, "written")?,
                None => anyhow::bail!("the outbox script returned no row"),
            };
            written == 1
        } else {
            let statement = format!(
                "WITH change AS ({change} RETURNING 1) \
                 INSERT INTO outbox ({COLUMNS}) SELECT {row} FROM change"
            );
            let query = Self::bind_row(bind(sqlx::query(AssertSqlSafe(statement))), event)?;
            query.execute(&mut **conn).await?.rows_affected() == 1
        };
        if changed {
            self.committed();
        }
        Ok(changed)
    }

    /// Binds `event`'s outbox row, its [`COLUMNS`], after `query`'s own
    /// parameters, with the current trace context.
    fn bind_row<'q>(query: AnyQuery<'q>, event: &CloudEvent) -> anyhow::Result<AnyQuery<'q>> {
        Ok(query
            .bind(event.id.clone())
            .bind(event.event_type.clone())
            .bind(serde_json::to_string(event)?)
            .bind(telemetry::current_traceparent())
            .bind(timestamp::now_ms()))
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

#[cfg(test)]
mod tests {
    use shared_db::{Database, DatabaseConfig};
    use sqlx::Connection;

    use super::*;

    #[actix_web::test]
    async fn append_all_writes_every_event_in_chunks_within_the_transaction() {
        let dir = std::env::temp_dir().join(format!("outbox-chunks-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a folder");
        let db = Database::connect(&DatabaseConfig::sqlite_file(&dir.join("o.db")))
            .await
            .expect("a database");
        let mut conn = db.write().await.expect("the writer");
        sqlx::raw_sql(include_str!("../migrations/outbox.sql"))
            .execute(&mut *conn)
            .await
            .expect("the outbox table");
        // More than two statements' worth, the last one partial.
        let events: Vec<CloudEvent> = (0..APPEND_CHUNK * 2 + 7)
            .map(|n| CloudEvent::new("test", "t.happened", &n.to_string(), &n).expect("an event"))
            .collect();
        let mut tx = conn.begin().await.expect("a transaction");
        Outbox::on()
            .append_all(&mut tx, &events)
            .await
            .expect("written");
        tx.rollback().await.expect("rolled back");
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
            .fetch_one(&mut *conn)
            .await
            .expect("counted");
        assert_eq!(count, 0, "all or nothing");
        let mut tx = conn.begin().await.expect("a transaction");
        Outbox::on()
            .append_all(&mut tx, &events)
            .await
            .expect("written");
        Outbox::off()
            .append_all(&mut tx, &events)
            .await
            .expect("nothing");
        tx.commit().await.expect("committed");
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM outbox ORDER BY id")
            .fetch_all(&mut *conn)
            .await
            .expect("ids");
        let made: Vec<&String> = events.iter().map(|e| &e.id).collect();
        assert_eq!(
            ids.iter().collect::<Vec<_>>(),
            made,
            "each once, in the order made"
        );
        drop(conn);
        let _ = std::fs::remove_dir_all(dir);
    }
}
