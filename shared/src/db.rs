//! The database pool: embedded SQLite by default, PostgreSQL when
//! `DATABASE_URL` says so, both through sqlx's `Any` driver so that each
//! service has one store implementation with portable SQL.

use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use futures::future::LocalBoxFuture;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Connection, Executor};

use crate::config::DatabaseConfig;
use crate::health::{CheckOutcome, HealthCheck};

pub use sqlx::AnyPool as Pool;

/// Opens the pool, creating the SQLite file (and its folder) when missing.
///
/// SQLite connections run in WAL mode (readers do not block the writer) with a
/// busy timeout, so concurrent writers queue instead of failing, and
/// `synchronous=NORMAL`, which in WAL mode survives a process crash (only a
/// power loss can drop the last commits).
///
/// # Errors
/// When the database cannot be reached or the file cannot be created.
pub async fn connect(config: &DatabaseConfig) -> anyhow::Result<AnyPool> {
    sqlx::any::install_default_drivers();
    let is_sqlite = config.url.starts_with("sqlite:");
    let mut url = config.url.clone();
    let mut max_connections = config.max_connections;
    if is_sqlite {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if in_memory {
            // Every connection to `:memory:` is a database of its own: keep one.
            max_connections = 1;
        } else {
            let path = url
                .trim_start_matches("sqlite:")
                .trim_start_matches("//")
                .split('?')
                .next()
                .unwrap_or_default()
                .to_owned();
            if let Some(dir) = std::path::Path::new(&path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating the data folder {}", dir.display()))?;
            }
            if !url.contains("mode=") {
                url.push_str(if url.contains('?') {
                    "&mode=rwc"
                } else {
                    "?mode=rwc"
                });
            }
        }
    }
    let mut options = AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5));
    if max_connections == 1 {
        options = options
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
    }
    options
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if is_sqlite {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                }
                Ok(())
            })
        })
        .connect(&url)
        .await
        .with_context(|| format!("connecting to the {} database", backend_name(&url)))
}

/// `sqlite` or `postgres`, for log lines (never the URL: it may hold a password).
pub fn backend_name(url: &str) -> &'static str {
    if url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    }
}

/// Readiness check: the pool hands out a connection that answers a ping.
pub struct DatabaseCheck {
    pool: AnyPool,
}

impl DatabaseCheck {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }
}

impl HealthCheck for DatabaseCheck {
    fn name(&self) -> &str {
        "database"
    }

    fn required(&self) -> bool {
        true
    }

    fn check(&self) -> LocalBoxFuture<'_, CheckOutcome> {
        async move {
            let started = std::time::Instant::now();
            let ping = async {
                let mut conn = self.pool.acquire().await?;
                conn.ping().await
            };
            match tokio::time::timeout(Duration::from_secs(2), ping).await {
                Ok(Ok(())) => {
                    CheckOutcome::up().with("latency_ms", started.elapsed().as_millis() as u64)
                }
                Ok(Err(e)) => CheckOutcome::down(e.to_string()),
                Err(_) => CheckOutcome::down("timed out after 2 s"),
            }
        }
        .boxed_local()
    }
}

/// Whether `err` is a unique-constraint violation (duplicate key).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(e) if e.is_unique_violation())
}
