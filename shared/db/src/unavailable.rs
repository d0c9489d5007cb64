//! Telling "the database is away" from every other failure, and answering it.
//!
//! A database that cannot be reached, that dropped a connection, that is
//! starting or shutting down (a restart, a fail-over, maintenance), a pool
//! that found no connection in time, or an SQLite file on a full or failing
//! disk: none of these is a bug in the request, and each passes on its own.
//! Such a failure is answered 503 `database_unavailable` with `Retry-After`,
//! which load balancers, client libraries and the web client retry, rather
//! than the 500 `internal_error` that pages someone for a bug. This module is
//! the one home of that rule: every service's error enum sends its
//! unexpected errors through [`problem`] and [`log`].

use std::time::Duration;

use actix_web::http::StatusCode;
use deadpool::managed::PoolError;
use shared_http::problem::{Problem, RETRY_SOON};

/// The problem code of a request that met a database outage.
pub const CODE: &str = "database_unavailable";

/// What a client is asked to wait before retrying: an outage usually lasts
/// longer than the second of [`RETRY_SOON`] is a guess for, but a restart or
/// a fail-over is over within a few, and a short wait costs little.
pub const RETRY_AFTER: Duration = RETRY_SOON;

/// Why the database could not serve a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// No connection could be made, or one broke (refused, reset, closed).
    Unreachable,
    /// The server is starting, shutting down, or ended the session
    /// (SQLSTATE class 08 and 57P01-57P03).
    NotAccepting,
    /// No connection came free, or none could be made, in time.
    Timeout,
    /// The SQLite file's disk is full, failing, or the file cannot be opened,
    /// or another process held it locked past the busy timeout.
    Storage,
}

impl Unavailable {
    /// The first database outage in `e`'s chain of causes, if any.
    pub fn of(e: &anyhow::Error) -> Option<Self> {
        e.chain().find_map(|cause| {
            if let Some(e) = cause.downcast_ref::<sqlx::Error>() {
                Self::of_sqlx(e)
            } else if let Some(e) = cause.downcast_ref::<PoolError<sqlx::Error>>() {
                Self::of_pool(e)
            } else {
                None
            }
        })
    }

    /// Whether a failed statement or connection attempt is an outage.
    pub fn of_sqlx(e: &sqlx::Error) -> Option<Self> {
        match e {
            sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed | sqlx::Error::Tls(_) => {
                Some(Self::Unreachable)
            }
            sqlx::Error::PoolTimedOut => Some(Self::Timeout),
            sqlx::Error::PoolClosed => Some(Self::NotAccepting),
            sqlx::Error::Database(db) => {
                let code = db.code()?;
                if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    Self::of_sqlite_code(&code)
                } else {
                    Self::of_sqlstate(&code)
                }
            }
            _ => None,
        }
    }

    fn of_pool(e: &PoolError<sqlx::Error>) -> Option<Self> {
        match e {
            PoolError::Timeout(_) => Some(Self::Timeout),
            PoolError::Backend(e) => Self::of_sqlx(e),
            PoolError::Closed => Some(Self::NotAccepting),
            _ => None,
        }
    }

    /// An SQLite result code, possibly extended (its low byte is the primary
    /// code): SQLITE_BUSY (past the busy timeout), SQLITE_IOERR, SQLITE_FULL,
    /// SQLITE_CANTOPEN.
    fn of_sqlite_code(code: &str) -> Option<Self> {
        match code.parse::<i32>().ok()? & 0xff {
            5 | 10 | 13 | 14 => Some(Self::Storage),
            _ => None,
        }
    }

    /// A PostgreSQL SQLSTATE: class 08 (connection exception), 57P01
    /// admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now.
    fn of_sqlstate(code: &str) -> Option<Self> {
        if code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03") {
            Some(Self::NotAccepting)
        } else {
            None
        }
    }
}

/// The answer to a request that failed unexpectedly with `e`: 503
/// `database_unavailable` with `Retry-After` when the database is away, the
/// opaque 500 otherwise. The cause is never sent.
pub fn problem(e: &anyhow::Error) -> Problem {
    if Unavailable::of(e).is_none() {
        return Problem::internal();
    }
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        CODE,
        "Database unavailable",
    )
    .detail("The database cannot be reached right now; retry after Retry-After seconds.")
    .retry_after(RETRY_AFTER)
}

/// Logs `e` once, where its response is made: an outage is a warning (it
/// passes on its own and is counted), anything else an error.
pub fn log(e: &anyhow::Error) {
    match Unavailable::of(e) {
        Some(why) => tracing::warn!(
            error.cause_chain = %format_args!("{e:#}"),
            reason = ?why,
            "database unavailable"
        ),
        None => tracing::error!(error.cause_chain = %format_args!("{e:#}"), "unexpected error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deadpool::managed::TimeoutType;

    fn io(kind: std::io::ErrorKind) -> anyhow::Error {
        anyhow::Error::new(sqlx::Error::Io(std::io::Error::from(kind))).context("reading items")
    }

    #[test]
    fn connection_failures_and_timeouts_are_outages() {
        assert_eq!(
            Unavailable::of(&io(std::io::ErrorKind::ConnectionRefused)),
            Some(Unavailable::Unreachable)
        );
        assert_eq!(
            Unavailable::of(&io(std::io::ErrorKind::UnexpectedEof)),
            Some(Unavailable::Unreachable)
        );
        let waited = anyhow::Error::new(PoolError::<sqlx::Error>::Timeout(TimeoutType::Wait))
            .context("acquiring a database connection");
        assert_eq!(Unavailable::of(&waited), Some(Unavailable::Timeout));
        let refused = anyhow::Error::new(PoolError::Backend(sqlx::Error::Io(
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        )));
        assert_eq!(Unavailable::of(&refused), Some(Unavailable::Unreachable));
    }

    #[test]
    fn server_states_and_sqlite_storage_codes_are_outages_and_others_not() {
        for code in ["08006", "08001", "57P01", "57P02", "57P03"] {
            assert_eq!(
                Unavailable::of_sqlstate(code),
                Some(Unavailable::NotAccepting),
                "{code}"
            );
        }
        // SQLITE_FULL, SQLITE_IOERR_WRITE (778), SQLITE_CANTOPEN, SQLITE_BUSY.
        for code in ["13", "778", "14", "5"] {
            assert_eq!(
                Unavailable::of_sqlite_code(code),
                Some(Unavailable::Storage),
                "{code}"
            );
        }
        // A unique violation, a syntax error, a cancelled statement.
        for code in ["23505", "42601", "57014"] {
            assert_eq!(Unavailable::of_sqlstate(code), None, "{code}");
        }
        // SQLITE_CONSTRAINT_UNIQUE, SQLITE_ERROR.
        for code in ["2067", "1"] {
            assert_eq!(Unavailable::of_sqlite_code(code), None, "{code}");
        }
        let bug = anyhow::Error::new(sqlx::Error::RowNotFound).context("reading an item");
        assert_eq!(Unavailable::of(&bug), None);
        assert_eq!(problem(&bug).code(), "internal_error");
    }

    #[test]
    fn an_outage_is_a_503_with_retry_after() {
        let response = problem(&io(std::io::ErrorKind::ConnectionReset)).to_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response
                .headers()
                .get(actix_web::http::header::RETRY_AFTER)
                .expect("Retry-After"),
            "1"
        );
    }
}
