//! The database pool: embedded SQLite by default, PostgreSQL when
//! `DATABASE_URL` says so, both through sqlx's `Any` driver so that each
//! service has one store implementation with portable SQL.
//!
//! Owns: the pool, migrations, the database health check, the read cache,
//! the `DATABASE_URL` settings ([`DatabaseConfig`]) and what a database
//! outage is and is answered ([`unavailable`]). Must not know: any
//! service's tables beyond the names a caller passes in, events, or HTTP
//! beyond the health check it registers and the outage's problem.

mod config;
pub mod read_cache;
mod retry;
pub mod unavailable;
pub use config::DatabaseConfig;
pub use unavailable::Unavailable;

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use deadpool::managed::{self, Metrics, Object, RecycleResult};
use futures::FutureExt;
use futures::future::LocalBoxFuture;
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, Connection, Executor};

use shared_http::health::{CheckOutcome, HealthCheck};

/// How long a caller waits for a connection before giving up.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A service's database: connections for reads and for writes.
///
/// On PostgreSQL both come from one sqlx pool. On SQLite, which allows one
/// writer at a time, writes have a single connection of their own: writers
/// queue for it (first come, first served, without spinning) instead of
/// colliding on the database lock and backing off in SQLite's busy handler,
/// which sleeps for milliseconds at a time and ruins tail latency under load.
/// Reads have their own connections and, in WAL mode, never wait for the writer.
///
/// Connections are kept in deadpool pools rather than sqlx's: sqlx pings
/// every connection handed back to its pool and, by default, every one taken
/// out of it: two round trips per borrow, which on PostgreSQL were as many
/// round trips as the statements of an order themselves, and on SQLite each
/// a hop to the connection's own thread on the single writer's critical path.
/// A file connection cannot go stale, so SQLite's are never checked. A
/// PostgreSQL connection is checked (pinged) only when it may be stale or
/// left something half done: see [`PostgresConnections`].
///
/// SQLite copies the WAL back into the database file in a checkpoint, which
/// ends with an fsync. Left to itself it does so inside whichever commit
/// takes the WAL past 1,000 pages, so that one request, and every writer
/// queued behind it, waits for the copy and the fsync: under load, several
/// times a second. Commits therefore never checkpoint here
/// (`wal_autocheckpoint = 0`); a background task does, every
/// [`CHECKPOINT_INTERVAL`]:
/// - in PASSIVE mode on a connection of its own, which blocks neither readers
///   nor the writer;
/// - and, when the WAL has grown past [`WAL_CATCH_UP_PAGES`] anyway (a PASSIVE
///   checkpoint never catches up with a steady stream of commits, and the WAL
///   starts over only once it has), once more on the writer's connection, whose
///   commits wait meanwhile: what is left to copy is what the last moments
///   wrote, and the next commit starts the WAL over.
#[derive(Clone)]
pub struct Database {
    pools: Pools,
    /// The checkpoint task of an SQLite file; it stops with the last clone.
    _checkpoints: Option<Arc<Background>>,
}

/// How often the WAL is copied back into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

/// The size of the WAL, in pages, past which a checkpoint holds the writer
/// to catch up (16,384 pages of 4 KiB: 64 MiB; 1 MiB in the unit tests).
const WAL_CATCH_UP_PAGES: i64 = if cfg!(test) { 256 } else { 16_384 };

/// A background task, aborted when dropped.
struct Background(tokio::task::JoinHandle<()>);

impl Drop for Background {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Checkpoints the WAL every `interval`: see [`Database`].
async fn checkpoint_every(interval: Duration, connections: SqliteConnections, writes: SqlitePool) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conn = None;
    loop {
        ticker.tick().await;
        if conn.is_none() {
            match connections.open().await {
                Ok(opened) => conn = Some(opened),
                Err(e) => {
                    tracing::warn!(error = %e, "opening the checkpoint connection failed");
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let pages = match checkpoint(c).await {
            Ok(pages) => pages,
            Err(e) => {
                tracing::warn!(error = %e, "checkpointing the WAL failed; reconnecting");
                conn = None;
                continue;
            }
        };
        if pages > WAL_CATCH_UP_PAGES {
            let caught_up = match sqlite(&writes).await {
                Ok(mut writer) => checkpoint(&mut writer).await.map_err(anyhow::Error::from),
                Err(e) => Err(e),
            };
            if let Err(e) = caught_up {
                tracing::warn!(error = %format_args!("{e:#}"), "catching up with the WAL failed");
            }
        }
    }
}

/// A PASSIVE checkpoint on `conn`; returns the WAL's size in pages (0 when
/// another process sharing the file is checkpointing it).
async fn checkpoint(conn: &mut AnyConnection) -> Result<i64, sqlx::Error> {
    match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(conn)
        .await
    {
        Ok((_, pages, _)) => Ok(pages),
        Err(e) if is_busy(&e) => Ok(0),
        Err(e) => Err(e),
    }
}

#[derive(Clone)]
enum Pools {
    Postgres(PostgresPool),
    Sqlite {
        reads: SqlitePool,
        writes: SqlitePool,
    },
}

type SqlitePool = managed::Pool<SqliteConnections>;
type PostgresPool = managed::Pool<PostgresConnections>;

/// How often a PostgreSQL connection in use is checked (pinged) at most.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Opens PostgreSQL connections, and pings one before handing it out again
/// only when its last check is [`CHECK_EVERY`] old, or when its last
/// borrower left something unsent (normally sent already as the borrower
/// let go: see [`Conn`]'s `Drop`). A busy service so pings each
/// connection about once a second instead of twice per borrow; a connection
/// the server closed (a restart, a fail-over, an idle timeout) fails the
/// statements it is used for until its next check, at most a second later,
/// drops it.
struct PostgresConnections {
    url: String,
    /// Raised when a connection was found lost (see [`Database::reading`]):
    /// every connection checked before it is checked again at its next
    /// borrow, since a server that dropped one has usually dropped them all.
    lost: std::sync::atomic::AtomicU64,
}

/// Server-side limits set on every PostgreSQL session as it opens (one
/// trip), so that a process that freezes or vanishes cannot hold locks for
/// long: the server ends a transaction left idle for 15 s (its locks go with
/// it), and its TCP keepalives notice a peer gone without a goodbye (a
/// partition, a killed node) after about 25 s (10 s idle, then 3 probes 5 s
/// apart) instead of the kernel's default of over two hours.
const SESSION_LIMITS: &str = "SET idle_in_transaction_session_timeout = '15s'; \
     SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3";

/// A PostgreSQL connection and when it was last known to work.
struct Checked {
    conn: AnyConnection,
    checked_at: Instant,
    /// [`PostgresConnections::lost`] as of the last check.
    lost: u64,
}

impl managed::Manager for PostgresConnections {
    type Type = Checked;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<Checked, sqlx::Error> {
        let mut conn = AnyConnection::connect(&self.url).await?;
        sqlx::raw_sql(SESSION_LIMITS).execute(&mut conn).await?;
        Ok(Checked {
            conn,
            checked_at: Instant::now(),
            lost: self.lost.load(std::sync::atomic::Ordering::Relaxed),
        })
    }

    async fn recycle(&self, c: &mut Checked, _: &Metrics) -> RecycleResult<sqlx::Error> {
        let lost = self.lost.load(std::sync::atomic::Ordering::Relaxed);
        if c.checked_at.elapsed() >= CHECK_EVERY || c.conn.should_flush() || c.lost < lost {
            c.conn.ping().await?;
            c.checked_at = Instant::now();
            c.lost = lost;
        }
        Ok(())
    }
}

/// Opens SQLite connections with the pragmas every connection needs, and
/// closes rather than reuses one whose last borrower may have left a
/// transaction of its own open (see [`Conn::run_script`]).
struct SqliteConnections {
    url: String,
}

/// An SQLite connection, and whether a script on it did not finish.
struct SqliteConn {
    conn: AnyConnection,
    unfinished: bool,
}

impl managed::Manager for SqliteConnections {
    type Type = SqliteConn;
    type Error = sqlx::Error;

    /// Opens a connection. Replicas opening a fresh file at the same moment
    /// can find it locked while one of them switches it to WAL, a moment in
    /// which SQLite answers "busy" without waiting: those attempts are retried.
    async fn create(&self) -> Result<SqliteConn, sqlx::Error> {
        let mut attempt = 1;
        loop {
            match self.open().await {
                Err(e) if attempt < 20 && is_busy(&e) => {
                    tokio::time::sleep(Duration::from_millis(10 * attempt)).await;
                    attempt += 1;
                }
                result => {
                    return result.map(|conn| SqliteConn {
                        conn,
                        unfinished: false,
                    });
                }
            }
        }
    }

    /// Otherwise nothing to check: the connection is an open file on this
    /// machine. A transaction abandoned by a cancelled request was already
    /// rolled back by sqlx, in order, on the connection's own thread; one a
    /// script began itself was not, and the connection is closed instead
    /// (SQLite rolls back what a closing connection left open).
    async fn recycle(&self, c: &mut SqliteConn, _: &Metrics) -> RecycleResult<sqlx::Error> {
        if c.unfinished {
            return Err(managed::RecycleError::message(
                "a script on this connection did not finish",
            ));
        }
        Ok(())
    }
}

impl SqliteConnections {
    async fn open(&self) -> Result<AnyConnection, sqlx::Error> {
        let mut conn = AnyConnection::connect(&self.url).await?;
        // The busy timeout first: switching a fresh file to WAL takes a lock
        // that a replica starting at the same moment may hold.
        conn.execute("PRAGMA busy_timeout = 10000").await?;
        conn.execute("PRAGMA journal_mode = WAL").await?;
        conn.execute("PRAGMA synchronous = NORMAL").await?;
        // Checkpoints are the background task's (see `Database`), not commits'.
        conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
        // A WAL that a burst grew past 64 MiB is cut back when it starts over.
        conn.execute("PRAGMA journal_size_limit = 67108864").await?;
        conn.execute("PRAGMA foreign_keys = ON").await?;
        Ok(conn)
    }
}

/// SQLITE_BUSY, or one of its extended codes.
fn is_busy(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(e)
        if e.code().and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| c & 0xff == 5))
}

fn sqlite_pool(url: &str, size: usize) -> anyhow::Result<SqlitePool> {
    pool(
        SqliteConnections {
            url: url.to_owned(),
        },
        size,
    )
}

fn pool<M: managed::Manager>(manager: M, size: usize) -> anyhow::Result<managed::Pool<M>> {
    managed::Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(ACQUIRE_TIMEOUT))
        .create_timeout(Some(ACQUIRE_TIMEOUT))
        .recycle_timeout(Some(ACQUIRE_TIMEOUT))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .context("building the database connection pool")
}

/// A query on either store.
pub type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// A connection borrowed from a [`Database`]; it goes back when dropped.
/// Use it as `&mut *conn` wherever sqlx takes an executor.
pub struct Conn(Borrowed);

enum Borrowed {
    /// `None` only while being dropped.
    Postgres(Option<Object<PostgresConnections>>),
    Sqlite(Object<SqliteConnections>),
}

const RETURNED: &str = "a connection is there until dropped";

impl Deref for Conn {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match &self.0 {
            Borrowed::Postgres(checked) => &checked.as_ref().expect(RETURNED).conn,
            Borrowed::Sqlite(c) => &c.conn,
        }
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match &mut self.0 {
            Borrowed::Postgres(checked) => &mut checked.as_mut().expect(RETURNED).conn,
            Borrowed::Sqlite(c) => &mut c.conn,
        }
    }
}

impl Conn {
    /// Closes this connection rather than hand it out again (it was lost).
    fn discard(mut self) {
        if let Borrowed::Postgres(checked) = &mut self.0
            && let Some(checked) = checked.take()
        {
            drop(Object::take(checked));
        }
    }

    /// Whether this is a connection to an SQLite file (else to PostgreSQL).
    pub fn is_sqlite(&self) -> bool {
        matches!(self.0, Borrowed::Sqlite(_))
    }

    /// Runs `script`: several SQLite statements, framed by its own `BEGIN
    /// IMMEDIATE` and `COMMIT`, whose `$n` parameters are numbered across
    /// all of them. It takes one trip to the connection's thread where a
    /// transaction through sqlx takes one per statement, and so holds the
    /// single writer for the time SQLite needs rather than for as long as the
    /// calling task takes to be scheduled again between statements. Returns
    /// the rows its statements return.
    ///
    /// A script that fails or is cancelled part of the way may leave its
    /// transaction open, where sqlx would not know to roll it back: the
    /// connection is then closed rather than handed out again, so that no
    /// later statement joins that transaction.
    ///
    /// PostgreSQL does not take several statements with parameters in one
    /// query: there, write one statement (a `WITH` for several changes).
    ///
    /// # Errors
    /// On a database error.
    pub async fn run_script(
        &mut self,
        script: AnyQuery<'_>,
    ) -> anyhow::Result<Vec<sqlx::any::AnyRow>> {
        let Borrowed::Sqlite(c) = &mut self.0 else {
            anyhow::bail!("a script of several statements is for SQLite only");
        };
        c.unfinished = true;
        // All the rows: a fetch that stops at the first would stop the script.
        let rows = script.fetch_all(&mut c.conn).await?;
        c.unfinished = false;
        Ok(rows)
    }
}

impl Drop for Conn {
    /// A transaction dropped unfinished (its request was cancelled, e.g. by
    /// a caller that gave up) has queued its ROLLBACK without sending it; the
    /// rows it locked stay locked until it is sent. It is sent now, in the
    /// background, and the connection goes back to the pool after, or is
    /// dropped if that fails, rather than wait for its next borrower.
    fn drop(&mut self) {
        let Borrowed::Postgres(checked) = &mut self.0 else {
            return;
        };
        let Some(mut checked) = checked.take_if(|c| c.conn.should_flush()) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // the pool's check sends it at the next borrow
        };
        runtime.spawn(async move {
            match checked.conn.ping().await {
                Ok(()) => checked.checked_at = Instant::now(),
                Err(_) => drop(Object::take(checked)),
            }
        });
    }
}

impl Database {
    /// Opens the database, creating the SQLite file (and its folder) when missing.
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
            let connections = PostgresConnections {
                url: config.url.clone(),
                lost: std::sync::atomic::AtomicU64::new(0),
            };
            let pool = pool(connections, config.max_connections as usize)?;
            let db = Self {
                pools: Pools::Postgres(pool),
                _checkpoints: None,
            };
            first_connection(&db).await?;
            return Ok(db);
        }
        let mut url = config.url.clone();
        if url.contains(":memory:") || url.contains("mode=memory") {
            // Every connection to `:memory:` is a database of its own: keep one.
            let pool = sqlite_pool(&url, 1)?;
            let db = Self {
                pools: Pools::Sqlite {
                    reads: pool.clone(),
                    writes: pool,
                },
                _checkpoints: None,
            };
            db.write().await?;
            return Ok(db);
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
        let writes = sqlite_pool(&url, 1)?;
        // The writer first: it creates the file and switches it to WAL.
        drop(sqlite(&writes).await?);
        let checkpoints = tokio::spawn(checkpoint_every(
            CHECKPOINT_INTERVAL,
            SqliteConnections { url: url.clone() },
            writes.clone(),
        ));
        let db = Self {
            pools: Pools::Sqlite {
                reads: sqlite_pool(&url, config.max_connections as usize)?,
                writes,
            },
            _checkpoints: Some(Arc::new(Background(checkpoints))),
        };
        db.read().await?;
        Ok(db)
    }

    /// Brings the schema up to date with `migrator`'s embedded migrations.
    ///
    /// Migrations applied by a newer release, which this one does not know,
    /// are left alone rather than refused: during a rolling update (or a
    /// rollback) a replica of the release before starts on a database the
    /// new one has already migrated, and migrations only ever add, so the
    /// older code still finds everything it reads. A known migration whose
    /// script changed is still refused.
    ///
    /// On PostgreSQL sqlx holds an advisory lock while it migrates, so replicas
    /// starting together take turns. SQLite has no such lock: two processes
    /// opening a fresh file at once can both decide a migration is due, and the
    /// slower one then fails on the tables the faster one created. Its retry
    /// reads the migration history again, finds the work done and succeeds.
    ///
    /// # Errors
    /// When a migration fails for any other reason.
    pub async fn migrate(&self, mut migrator: Migrator) -> anyhow::Result<()> {
        migrator.set_ignore_missing(true);
        let mut attempt = 1;
        loop {
            let result = migrator.run(&mut *self.write().await?).await;
            match result {
                Ok(()) => return Ok(()),
                Err(e) if attempt < 5 && self.is_sqlite() => {
                    tracing::warn!(error = %e, attempt, "migration raced another process; retrying");
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e).context("running database migrations"),
            }
        }
    }

    /// Moves child rows kept in a table of their own (`legacy_table`) into a
    /// JSON array `column` of the `table` rows they belong to (a one-off data
    /// migration). `children` are (row id, child) pairs, each row's together;
    /// every row whose `column` is still NULL gets its array, and
    /// `legacy_table` is emptied, in one transaction. Returns how many rows
    /// it filled.
    ///
    /// # Errors
    /// On a database error.
    pub async fn move_into_json_column<C: serde::Serialize>(
        &self,
        table: &'static str,
        column: &'static str,
        legacy_table: &'static str,
        children: Vec<(String, C)>,
    ) -> anyhow::Result<usize> {
        let mut by_row: Vec<(String, Vec<C>)> = Vec::new();
        for (id, child) in children {
            match by_row.last_mut() {
                Some((last, children)) if *last == id => children.push(child),
                _ => by_row.push((id, vec![child])),
            }
        }
        if by_row.is_empty() {
            return Ok(0);
        }
        let mut conn = self.write().await?;
        let mut tx = conn.begin().await?;
        // Only our own table names are formatted into the SQL; values are bound.
        let update = format!("UPDATE {table} SET {column} = $1 WHERE id = $2 AND {column} IS NULL");
        for (id, children) in &by_row {
            sqlx::query(sqlx::AssertSqlSafe(update.as_str()))
                .bind(serde_json::to_string(children).context("encoding moved rows")?)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {legacy_table}")))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(by_row.len())
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self.pools, Pools::Sqlite { .. })
    }

    /// A connection for queries that only read.
    ///
    /// # Errors
    /// When no connection comes free within 5 s, or none can be opened.
    pub async fn read(&self) -> anyhow::Result<Conn> {
        match &self.pools {
            Pools::Postgres(pool) => postgres(pool).await,
            Pools::Sqlite { reads, .. } => sqlite(reads).await,
        }
    }

    /// The connection for anything that writes (and the transactions around it).
    ///
    /// # Errors
    /// When no connection comes free within 5 s, or none can be opened.
    pub async fn write(&self) -> anyhow::Result<Conn> {
        match &self.pools {
            Pools::Postgres(pool) => postgres(pool).await,
            Pools::Sqlite { writes, .. } => sqlite(writes).await,
        }
    }
}

/// How long a service starting waits for its PostgreSQL to come up.
const FIRST_CONNECTION_WAIT: Duration = Duration::from_secs(30);

/// Opens the first PostgreSQL connection, waiting up to
/// [`FIRST_CONNECTION_WAIT`] for a server that is not up yet: one started
/// beside the services (by compose, say) takes a moment, and the official
/// image starts, stops and starts its server again while it initialises.
async fn first_connection(db: &Database) -> anyhow::Result<()> {
    let deadline = Instant::now() + FIRST_CONNECTION_WAIT;
    loop {
        match db.read().await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() < deadline && not_up_yet(&e) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.context("connecting to the postgres database")),
        }
    }
}

/// Whether `e` is what a server that is still starting answers: nothing
/// listening, a connection that hangs (the pool's create timeout), or
/// "the database system is starting up" (SQLSTATE 57P03): an outage.
fn not_up_yet(e: &anyhow::Error) -> bool {
    Unavailable::of(e).is_some()
}

async fn postgres(pool: &PostgresPool) -> anyhow::Result<Conn> {
    Ok(Conn(Borrowed::Postgres(Some(borrow(pool).await?))))
}

async fn sqlite(pool: &SqlitePool) -> anyhow::Result<Conn> {
    Ok(Conn(Borrowed::Sqlite(borrow(pool).await?)))
}

async fn borrow<M>(pool: &managed::Pool<M>) -> anyhow::Result<Object<M>>
where
    M: managed::Manager<Error = sqlx::Error>,
{
    pool.get().await.map_err(|e| match e {
        managed::PoolError::Backend(e) => {
            anyhow::Error::new(e).context("connecting to the database")
        }
        e => anyhow::Error::new(e).context("acquiring a database connection"),
    })
}

/// `$first, $first+1, …` for `count` parameters.
pub fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `sqlite` or `postgres`, for log lines (never the URL: it may hold a password).
pub fn backend_name(url: &str) -> &'static str {
    if url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    }
}

/// Readiness check: a connection comes free and answers a ping.
pub struct DatabaseCheck {
    database: Database,
}

impl DatabaseCheck {
    pub fn new(database: &Database) -> Self {
        Self {
            database: database.clone(),
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
                let mut conn = self.database.read().await?;
                conn.ping().await?;
                anyhow::Ok(())
            };
            match tokio::time::timeout(Duration::from_secs(2), ping).await {
                Ok(Ok(())) => CheckOutcome::up().with(
                    "latency_ms",
                    shared_http::timestamp::millis(started.elapsed()),
                ),
                Ok(Err(e)) => CheckOutcome::down(format!("{e:#}")),
                Err(_) => CheckOutcome::down("timed out after 2 s"),
            }
        }
        .boxed_local()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server still starting (compose's PostgreSQL initialising, as seen in
    /// the compose smoke: a connection that hung past the pool's create
    /// timeout ended the service) is waited for; a real fault is not.
    #[test]
    fn a_server_still_starting_is_waited_for_and_a_real_fault_is_not() {
        let timeout = anyhow::Error::new(managed::PoolError::<sqlx::Error>::Timeout(
            managed::TimeoutType::Create,
        ))
        .context("acquiring a database connection");
        assert!(not_up_yet(&timeout));
        let refused = anyhow::Error::new(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )))
        .context("connecting to the database");
        assert!(not_up_yet(&refused));
        let bad = anyhow::Error::new(sqlx::Error::Protocol("not postgres".into()))
            .context("connecting to the database");
        assert!(!not_up_yet(&bad));
    }

    /// Runs in the PostgreSQL pass (`TEST_DATABASE_URL`): both pools' sessions
    /// carry the server-side limits.
    #[tokio::test]
    async fn postgresql_sessions_carry_the_idle_transaction_timeout_and_keepalives() {
        let Some(url) = std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            eprintln!("skipped: needs TEST_DATABASE_URL (the PostgreSQL pass)");
            return;
        };
        let db = Database::connect(&DatabaseConfig {
            url,
            max_connections: 2,
        })
        .await
        .expect("connects");
        for mut conn in [
            db.read().await.expect("reader"),
            db.write().await.expect("writer"),
        ] {
            let mut settings = Vec::new();
            for name in [
                "idle_in_transaction_session_timeout",
                "tcp_keepalives_idle",
                "tcp_keepalives_interval",
                "tcp_keepalives_count",
            ] {
                let value: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW {name}")))
                    .fetch_one(&mut *conn)
                    .await
                    .expect("shown");
                settings.push(value);
            }
            assert_eq!(settings, ["15s", "10", "5", "3"]);
        }
    }

    fn size(path: &std::path::Path) -> u64 {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }

    /// A database in a fresh folder (`data.db`) with one table made by
    /// `create`; returns the folder too, to look at the files and remove.
    async fn fresh(create: &'static str) -> (std::path::PathBuf, Database) {
        let dir = std::env::temp_dir().join(format!("db-test-{}", uuid::Uuid::new_v4()));
        let db = Database::connect(&DatabaseConfig::sqlite_file(&dir.join("data.db")))
            .await
            .expect("opens");
        db.write()
            .await
            .expect("writer")
            .execute(create)
            .await
            .expect("table");
        (dir, db)
    }

    /// A migrator of the scripts `(version, name, sql)`, as `migrate!` makes one.
    async fn migrator_of(scripts: &[(u32, &str, &str)]) -> Migrator {
        let dir = std::env::temp_dir().join(format!("migrations-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("folder");
        for (version, name, sql) in scripts {
            std::fs::write(dir.join(format!("{version}_{name}.sql")), sql).expect("script");
        }
        let migrator = Migrator::new(dir.as_path()).await.expect("migrations");
        let _ = std::fs::remove_dir_all(&dir);
        migrator
    }

    #[tokio::test]
    async fn a_release_starts_on_a_database_a_newer_release_migrated_but_not_on_a_changed_script() {
        let (dir, db) = fresh("CREATE TABLE marker (m INTEGER)").await;
        let first = (1, "items", "CREATE TABLE items (sku TEXT PRIMARY KEY);");
        let second = (2, "colour", "ALTER TABLE items ADD COLUMN colour TEXT;");
        db.migrate(migrator_of(&[first, second]).await)
            .await
            .expect("the newer release migrates");
        db.migrate(migrator_of(&[first]).await)
            .await
            .expect("the release before starts on the newer schema");
        let changed = (
            1,
            "items",
            "CREATE TABLE items (sku TEXT PRIMARY KEY, n INT);",
        );
        let refused = db.migrate(migrator_of(&[changed]).await).await;
        assert!(refused.is_err(), "a changed script is refused");
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_wal_is_checkpointed_in_the_background() {
        let (dir, db) = fresh("CREATE TABLE blobs (b BLOB NOT NULL)").await;
        let file = dir.join("data.db");
        let mut conn = db.write().await.expect("writer");
        // About 500 pages. Commits do not checkpoint, so without the
        // background task the rows would stay in the WAL.
        for _ in 0..50 {
            sqlx::query("INSERT INTO blobs (b) VALUES (zeroblob(40000))")
                .execute(&mut *conn)
                .await
                .expect("insert");
        }
        drop(conn);
        assert!(
            size(&dir.join("data.db-wal")) > 1_900_000,
            "the rows are in the WAL"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while size(&file) < 1_900_000 {
            assert!(std::time::Instant::now() < deadline, "no checkpoint ran");
            tokio::time::sleep(CHECKPOINT_INTERVAL).await;
        }
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The WAL header's checkpoint sequence number (bytes 12-15, big-endian):
    /// SQLite adds one each time the WAL starts over from its beginning.
    fn wal_restarts(wal: &std::path::Path) -> u32 {
        let mut header = [0_u8; 16];
        std::fs::File::open(wal)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header))
            .map_or(0, |()| {
                u32::from_be_bytes([header[12], header[13], header[14], header[15]])
            })
    }

    #[tokio::test]
    async fn the_wal_starts_over_under_a_steady_stream_of_commits() {
        let (dir, db) = fresh("CREATE TABLE blobs (b BLOB NOT NULL)").await;
        let wal = dir.join("data.db-wal");
        // Commits back to back, a few pages each: commits do not checkpoint,
        // and a PASSIVE checkpoint alone never catches up with them, so the
        // WAL would never start over (0 times in 245,000 commits when the
        // catch-up is taken out). Counted from the WAL's own header rather
        // than its size, which on a busy machine depends on how long each
        // checkpoint's fsync takes. The deadline only bounds a failing run.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let first = wal_restarts(&wal);
        let mut commits = 0_u64;
        while wal_restarts(&wal).wrapping_sub(first) < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL started over {} times in {commits} commits",
                wal_restarts(&wal).wrapping_sub(first)
            );
            sqlx::query("INSERT INTO blobs (b) VALUES (zeroblob(8000))")
                .execute(&mut *db.write().await.expect("writer"))
                .await
                .expect("insert");
            commits += 1;
        }
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }

    async fn count(db: &Database) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&mut *db.read().await.expect("reader"))
            .await
            .expect("count")
    }

    #[tokio::test]
    async fn a_script_that_fails_half_way_leaves_no_transaction_open_for_the_next_writer() {
        let (dir, db) = fresh("CREATE TABLE t (x INTEGER NOT NULL)").await;
        let mut conn = db.write().await.expect("writer");
        let script = sqlx::query(
            "BEGIN IMMEDIATE; INSERT INTO t (x) VALUES ($1); \
             INSERT INTO missing (x) VALUES ($1); COMMIT",
        )
        .bind(1_i64);
        assert!(conn.run_script(script).await.is_err(), "the script fails");
        drop(conn);

        // The first INSERT ran inside the script's open transaction. A writer
        // handed that connection would join it: its row would never commit.
        sqlx::query("INSERT INTO t (x) VALUES (2)")
            .execute(&mut *db.write().await.expect("writer"))
            .await
            .expect("insert");
        assert_eq!(count(&db).await, 1, "the next write is committed, alone");

        let script = sqlx::query(
            "BEGIN IMMEDIATE; INSERT INTO t (x) VALUES ($1); SELECT COUNT(*) AS n FROM t; COMMIT",
        )
        .bind(3_i64);
        let rows = db
            .write()
            .await
            .expect("writer")
            .run_script(script)
            .await
            .expect("runs");
        let n: i64 = sqlx::Row::try_get(&rows[0], "n").expect("n");
        assert_eq!((n, count(&db).await), (2, 2), "a script that ends commits");
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
