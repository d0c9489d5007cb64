//! The database pool: embedded SQLite by default, PostgreSQL when
//! `DATABASE_URL` says so, both through sqlx's `Any` driver so that each
//! service has one store implementation with portable SQL.

use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use futures::future::LocalBoxFuture;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Connection, Executor};

use crate::config::DatabaseConfig;
use crate::health::{CheckOutcome, HealthCheck};

/// A service's database: a pool for reads and one for writes.
///
/// On PostgreSQL both are the same pool. On SQLite, which allows one writer at
/// a time, the write pool has a single connection: writers queue in the pool
/// (first come, first served, without spinning) instead of colliding on the
/// database lock and backing off in SQLite's busy handler, which sleeps for
/// milliseconds at a time and ruins tail latency under load. Reads use their
/// own pool and, in WAL mode, never wait for the writer.
#[derive(Clone)]
pub struct Database {
    reads: AnyPool,
    writes: AnyPool,
    is_sqlite: bool,
}

impl Database {
    /// Opens the pools, creating the SQLite file (and its folder) when missing.
    ///
    /// SQLite connections run in WAL mode with a busy timeout (other processes
    /// sharing the file queue rather than fail) and `synchronous=NORMAL`, which
    /// in WAL mode survives a process crash (only a power loss can drop the last
    /// commits).
    ///
    /// # Errors
    /// When the database cannot be reached or the file cannot be created.
    pub async fn connect(config: &DatabaseConfig) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        if !config.url.starts_with("sqlite:") {
            let pool = open(&config.url, config.max_connections, false).await?;
            return Ok(Self {
                reads: pool.clone(),
                writes: pool,
                is_sqlite: false,
            });
        }
        let mut url = config.url.clone();
        if url.contains(":memory:") || url.contains("mode=memory") {
            // Every connection to `:memory:` is a database of its own: keep one.
            let pool = open(&url, 1, true).await?;
            return Ok(Self {
                reads: pool.clone(),
                writes: pool,
                is_sqlite: true,
            });
        }
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
        // The writer first: it creates the file and switches it to WAL.
        let writes = open(&url, 1, true).await?;
        let reads = open(&url, config.max_connections, true).await?;
        Ok(Self {
            reads,
            writes,
            is_sqlite: true,
        })
    }

    /// Brings the schema up to date with `migrator`'s embedded migrations.
    ///
    /// On PostgreSQL sqlx holds an advisory lock while it migrates, so replicas
    /// starting together take turns. SQLite has no such lock: two processes
    /// opening a fresh file at once can both decide a migration is due, and the
    /// slower one then fails on the tables the faster one created. Its retry
    /// reads the migration history again, finds the work done and succeeds.
    ///
    /// # Errors
    /// When a migration fails for any other reason.
    pub async fn migrate(&self, migrator: &Migrator) -> anyhow::Result<()> {
        let mut attempt = 1;
        loop {
            match migrator.run(&self.writes).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < 5 && self.is_sqlite => {
                    tracing::warn!(error = %e, attempt, "migration raced another process; retrying");
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e).context("running database migrations"),
            }
        }
    }

    /// For queries that only read.
    pub fn reads(&self) -> &AnyPool {
        &self.reads
    }

    /// For anything that writes (and the transactions around it).
    pub fn writes(&self) -> &AnyPool {
        &self.writes
    }
}

async fn open(url: &str, max_connections: u32, sqlite: bool) -> anyhow::Result<AnyPool> {
    let mut options = AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5));
    if sqlite {
        // Keep SQLite connections open: opening one is the expensive part. A
        // file connection cannot go stale, so no ping before each use either:
        // it would cost a round trip to the connection's thread per query.
        options = options
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false);
    }
    options
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if sqlite {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        .with_context(|| format!("connecting to the {} database", backend_name(url)))
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
    pub fn new(database: &Database) -> Self {
        Self {
            pool: database.reads().clone(),
        }
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
