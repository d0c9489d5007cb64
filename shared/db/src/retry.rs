//! Riding out a lost connection: a unit of work that failed because the
//! server closed its connection (a restart, a fail-over, an idle timeout)
//! runs once more on a fresh connection, where that is safe.
//!
//! Safe means the work's effect cannot be had twice: it only reads, or its
//! every statement may run again after one whose answer was lost
//! ([`Database::repeatable`]: an insert of a fresh id that ignores a
//! conflict, an update that a second run finds done), or it is one
//! transaction that failed before its COMMIT ([`Database::in_transaction`]:
//! the server rolled it back). A COMMIT whose answer was lost is never run
//! again: its outcome is unknown, and the caller's 503 says so.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sqlx::{AnyConnection, Connection};

use crate::unavailable::Unavailable;
use crate::{Conn, Database, Pools};

/// How long a retry waits for a server that refuses connections or is
/// still starting: a restart for maintenance or a fail-over takes a moment,
/// and a request that waits it out is not failed. Longer is an outage,
/// answered 503.
const RECONNECT_WAIT: Duration = Duration::from_secs(2);

/// Marks the error of a COMMIT whose answer was lost: never retried.
#[derive(Debug)]
struct OutcomeUnknown;

impl std::fmt::Display for OutcomeUnknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("committing: the connection was lost, the outcome is unknown")
    }
}

/// Whether `e` is a lost connection or a server that is not accepting
/// (not a timeout, which already waited, nor a full disk).
fn connection_lost(e: &anyhow::Error) -> bool {
    matches!(
        Unavailable::of(e),
        Some(Unavailable::Unreachable | Unavailable::NotAccepting)
    )
}

impl Database {
    /// Runs `work`, which only reads, on a read connection; once more on a
    /// fresh one when the connection was lost.
    ///
    /// # Errors
    /// Those of `work`, and an outage that outlasts the retry.
    pub async fn reading<T>(
        &self,
        work: impl AsyncFnMut(&mut Conn) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.retrying(false, work).await
    }

    /// Runs `work` on the write connection; once more on a fresh one when
    /// the connection was lost, even where a statement's answer was lost
    /// after it committed: only for work whose statements may all run again
    /// (see the module docs).
    ///
    /// # Errors
    /// Those of `work`, and an outage that outlasts the retry.
    pub async fn repeatable<T>(
        &self,
        work: impl AsyncFnMut(&mut Conn) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.retrying(true, work).await
    }

    /// Runs `work` in a transaction on the write connection and commits it;
    /// once more on a fresh connection when the connection was lost before
    /// the COMMIT. A COMMIT whose answer was lost is not repeated.
    ///
    /// # Errors
    /// Those of `work`, and an outage that outlasts the retry.
    pub async fn in_transaction<T>(
        &self,
        mut work: impl AsyncFnMut(&mut AnyConnection) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.retrying(true, async |conn: &mut Conn| {
            let mut tx = conn.begin().await?;
            let done = work(&mut tx).await?;
            tx.commit()
                .await
                .map_err(|e| anyhow::Error::new(e).context(OutcomeUnknown))?;
            Ok(done)
        })
        .await
    }

    async fn retrying<T>(
        &self,
        write: bool,
        mut work: impl AsyncFnMut(&mut Conn) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut conn = self.connection_when_up(write).await?;
        let e = match work(&mut conn).await {
            Ok(done) => return Ok(done),
            Err(e) => e,
        };
        if !connection_lost(&e) || e.downcast_ref::<OutcomeUnknown>().is_some() {
            return Err(e);
        }
        tracing::info!(error = %format_args!("{e:#}"), "database connection lost; retrying once");
        conn.discard();
        self.suspect_connections();
        let mut conn = self.connection_when_up(write).await?;
        work(&mut conn).await
    }

    /// Has every pooled connection checked at its next borrow.
    fn suspect_connections(&self) {
        if let Pools::Postgres(pool) = &self.pools {
            pool.manager().lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection, waiting up to [`RECONNECT_WAIT`] for a server that
    /// refuses connections or is still starting.
    async fn connection_when_up(&self, write: bool) -> anyhow::Result<Conn> {
        let deadline = Instant::now() + RECONNECT_WAIT;
        loop {
            let borrowed = if write {
                self.write().await
            } else {
                self.read().await
            };
            match borrowed {
                Err(e) if Instant::now() < deadline && connection_lost(&e) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                result => return result,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DatabaseConfig;

    /// Runs in the PostgreSQL pass (`TEST_DATABASE_URL`).
    async fn postgres() -> Option<Database> {
        let url = std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty());
        let Some(url) = url else {
            eprintln!("skipped: needs TEST_DATABASE_URL (the PostgreSQL pass)");
            return None;
        };
        let config = DatabaseConfig {
            url,
            max_connections: 2,
        };
        Some(Database::connect(&config).await.expect("connects"))
    }

    /// Ends the session `conn` is on, as a server restart does.
    async fn lose(conn: &mut AnyConnection) -> anyhow::Result<()> {
        sqlx::query("SELECT pg_terminate_backend(pg_backend_pid())")
            .execute(conn)
            .await?;
        Ok(())
    }

    #[tokio::test]
    async fn postgresql_a_lost_connection_is_retried_once_and_other_errors_are_not() {
        let Some(db) = postgres().await else { return };
        let mut attempts = 0;
        let read = db
            .reading(async |conn| {
                attempts += 1;
                if attempts == 1 {
                    lose(conn).await?;
                }
                Ok(sqlx::query_scalar::<_, i32>("SELECT 1")
                    .fetch_one(&mut **conn)
                    .await?)
            })
            .await;
        assert_eq!((read.expect("read on the retry"), attempts), (1, 2));

        let mut attempts = 0;
        let failed = db
            .reading(async |conn| {
                attempts += 1;
                Ok(sqlx::query("SELECT nope").execute(&mut **conn).await?)
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(attempts, 1, "a bug is not retried");
    }

    #[tokio::test]
    async fn postgresql_a_transaction_lost_before_its_commit_runs_again_and_lands_once() {
        let Some(db) = postgres().await else { return };
        let table = format!("retry_{}", uuid::Uuid::new_v4().simple());
        let create = format!("CREATE TABLE {table} (x INTEGER NOT NULL)");
        sqlx::raw_sql(sqlx::AssertSqlSafe(create))
            .execute(&mut *db.write().await.expect("writer"))
            .await
            .expect("table");
        let insert = format!("INSERT INTO {table} (x) VALUES (1)");
        let mut attempts = 0;
        db.in_transaction(async |tx| {
            attempts += 1;
            sqlx::query(sqlx::AssertSqlSafe(insert.as_str()))
                .execute(&mut *tx)
                .await?;
            if attempts == 1 {
                lose(tx).await?;
            }
            Ok(())
        })
        .await
        .expect("committed on the retry");
        let count = format!("SELECT COUNT(*) FROM {table}");
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count))
            .fetch_one(&mut *db.read().await.expect("reader"))
            .await
            .expect("count");
        assert_eq!((rows, attempts), (1, 2), "the first run was rolled back");
    }
}
