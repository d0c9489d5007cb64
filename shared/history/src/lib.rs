//! A change history: who changed a subject, when and how, one row per
//! change, written in the change's own transaction and read back newest
//! first.
//!
//! It owns the part every history shares: the row around the change (the
//! subject, its `seq`, `at`, `actor`), numbering each subject's changes 1,
//! 2, 3, … , reading a subject's last changes newest first, and telling an
//! unknown subject (`None`) from one with no changes yet (empty).
//!
//! It must not know what is being changed: it is generic over the subject
//! key (a column and its value, as text) and the change payload (a
//! [`Payload`]: its own columns, how to write and read them). A service
//! names its tables and columns in a [`History`] and keeps its words (what
//! a change means, its HTTP shape) to itself. The tables themselves are
//! the services' (their migrations).
//!
//! Numbering relies on the caller: [`History::record`] is called after the
//! change has written the subject's row in the same transaction (its row
//! lock on PostgreSQL, the one writer on SQLite), so the next `seq` is free.

use anyhow::Context;
pub use shared_db::AnyQuery;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

/// What one change recorded, beside who and when: its own columns.
pub trait Payload: Sized {
    /// The payload's columns, in the order [`Payload::bind`] binds them.
    const COLUMNS: &'static [&'static str];

    /// Binds the payload's values to `query`, one per column, in order.
    ///
    /// # Errors
    /// When a value cannot be encoded.
    fn bind<'q>(&self, query: AnyQuery<'q>) -> anyhow::Result<AnyQuery<'q>>;

    /// The payload from a row holding its columns.
    ///
    /// # Errors
    /// When a column is missing or holds what the payload cannot read.
    fn from_row(row: &AnyRow) -> anyhow::Result<Self>;
}

/// One recorded change: who, when, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<P> {
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub actor: String,
    pub payload: P,
}

/// Where a history is kept. The names are the service's own constants,
/// never input: they are written into the SQL.
#[derive(Debug, Clone, Copy)]
pub struct History {
    /// The table of the changes (`subject, seq, at, actor, <payload>`,
    /// keyed by `subject, seq`).
    pub changes: &'static str,
    /// The table of the subjects, whose rows the changes belong to.
    pub subjects: &'static str,
    /// The subject key's column, in both tables.
    pub key: &'static str,
}

impl History {
    /// Writes a change of `subject` into the open transaction `tx`, numbered
    /// after the subject's last. Call it once the change has written the
    /// subject's row in `tx` (see the crate's documentation).
    ///
    /// # Errors
    /// On a database error.
    pub async fn record<P: Payload>(
        &self,
        tx: &mut AnyConnection,
        subject: &str,
        at: i64,
        actor: &str,
        payload: &P,
    ) -> anyhow::Result<()> {
        // Only the history's own names are formatted into the SQL; every value is bound.
        let query = sqlx::query(AssertSqlSafe(self.insert_sql(P::COLUMNS)))
            .bind(subject.to_owned())
            .bind(at)
            .bind(actor.to_owned());
        payload.bind(query)?.execute(&mut *tx).await?;
        Ok(())
    }

    /// The last `limit` changes of `subject`, newest first; `None` when no
    /// such subject exists.
    ///
    /// # Errors
    /// On a database error, or a stored row the payload cannot read.
    pub async fn read<P: Payload>(
        &self,
        conn: &mut AnyConnection,
        subject: &str,
        limit: u32,
    ) -> anyhow::Result<Option<Vec<Change<P>>>> {
        let exists: Option<String> = sqlx::query_scalar(AssertSqlSafe(self.exists_sql()))
            .bind(subject.to_owned())
            .fetch_optional(&mut *conn)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let rows = sqlx::query(AssertSqlSafe(self.select_sql(P::COLUMNS)))
            .bind(subject.to_owned())
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?;
        let changes = rows
            .iter()
            .map(|row| {
                Ok(Change {
                    at: row.try_get("at")?,
                    actor: row.try_get("actor")?,
                    payload: P::from_row(row)?,
                })
            })
            .collect::<anyhow::Result<_>>()
            .with_context(|| format!("a change of {subject:?} cannot be read"))?;
        Ok(Some(changes))
    }

    /// Inserts a change: `$1` the subject, `$2` at, `$3` the actor, then
    /// the payload's `columns`.
    fn insert_sql(&self, columns: &[&str]) -> String {
        let Self { changes, key, .. } = self;
        let names: String = columns.iter().map(|c| format!(", {c}")).collect();
        let values: String = (4..4 + columns.len()).map(|n| format!(", ${n}")).collect();
        format!(
            "INSERT INTO {changes} ({key}, seq, at, actor{names}) \
             VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM {changes} WHERE {key} = $1), \
             $2, $3{values})"
        )
    }

    /// Finds the subject `$1`.
    fn exists_sql(&self) -> String {
        let Self { subjects, key, .. } = self;
        format!("SELECT {key} FROM {subjects} WHERE {key} = $1")
    }

    /// The last `$2` changes of the subject `$1`, newest first.
    fn select_sql(&self, columns: &[&str]) -> String {
        let Self { changes, key, .. } = self;
        let names: String = columns.iter().map(|c| format!(", {c}")).collect();
        format!(
            "SELECT at, actor{names} FROM {changes} WHERE {key} = $1 ORDER BY seq DESC LIMIT $2"
        )
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::*;

    const THINGS: History = History {
        changes: "thing_changes",
        subjects: "things",
        key: "thing",
    };

    #[derive(Debug, PartialEq, Eq)]
    struct Painted {
        colour: Option<String>,
        coats: i64,
    }

    impl Payload for Painted {
        const COLUMNS: &'static [&'static str] = &["colour", "coats"];

        fn bind<'q>(&self, query: AnyQuery<'q>) -> anyhow::Result<AnyQuery<'q>> {
            Ok(query.bind(self.colour.clone()).bind(self.coats))
        }

        fn from_row(row: &AnyRow) -> anyhow::Result<Self> {
            Ok(Self {
                colour: row.try_get("colour")?,
                coats: row.try_get("coats")?,
            })
        }
    }

    fn painted(colour: &str, coats: i64) -> Painted {
        Painted {
            colour: Some(colour.to_owned()),
            coats,
        }
    }

    #[test]
    fn the_statements_name_the_history_and_bind_every_value_in_order() {
        assert_eq!(
            THINGS.insert_sql(Painted::COLUMNS),
            "INSERT INTO thing_changes (thing, seq, at, actor, colour, coats) \
             VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM thing_changes WHERE thing = $1), \
             $2, $3, $4, $5)"
        );
        assert_eq!(
            THINGS.exists_sql(),
            "SELECT thing FROM things WHERE thing = $1"
        );
        assert_eq!(
            THINGS.select_sql(Painted::COLUMNS),
            "SELECT at, actor, colour, coats FROM thing_changes \
             WHERE thing = $1 ORDER BY seq DESC LIMIT $2"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn changes_are_numbered_per_subject_and_read_back_newest_first() {
        sqlx::any::install_default_drivers();
        let mut conn = AnyConnection::connect("sqlite::memory:")
            .await
            .expect("a database");
        for statement in [
            "CREATE TABLE things (thing TEXT PRIMARY KEY)",
            "CREATE TABLE thing_changes (thing TEXT NOT NULL REFERENCES things (thing), \
             seq BIGINT NOT NULL, at BIGINT NOT NULL, actor TEXT NOT NULL, \
             colour TEXT, coats BIGINT NOT NULL, PRIMARY KEY (thing, seq))",
            "INSERT INTO things (thing) VALUES ('door'), ('gate'), ('shed')",
        ] {
            sqlx::query(statement)
                .execute(&mut conn)
                .await
                .expect("set up");
        }
        let mut tx = conn.begin().await.expect("a transaction");
        for (at, (thing, change)) in (1_i64..).zip([
            ("door", painted("red", 1)),
            ("gate", painted("green", 1)),
            ("door", painted("blue", 2)),
            (
                "door",
                Painted {
                    colour: None,
                    coats: 0,
                },
            ),
        ]) {
            THINGS
                .record(&mut tx, thing, at, "alice", &change)
                .await
                .expect("recorded");
        }
        tx.commit().await.expect("committed");

        let seqs: Vec<(String, i64)> =
            sqlx::query_as("SELECT thing, seq FROM thing_changes ORDER BY thing, seq")
                .fetch_all(&mut conn)
                .await
                .expect("rows");
        let numbered = |thing: &str, seq| (thing.to_owned(), seq);
        assert_eq!(
            seqs,
            [
                numbered("door", 1),
                numbered("door", 2),
                numbered("door", 3),
                numbered("gate", 1)
            ]
        );

        let door = THINGS
            .read::<Painted>(&mut conn, "door", 2)
            .await
            .expect("read")
            .expect("a known subject");
        assert_eq!(
            door,
            [
                Change {
                    at: 4,
                    actor: "alice".to_owned(),
                    payload: Painted {
                        colour: None,
                        coats: 0
                    },
                },
                Change {
                    at: 3,
                    actor: "alice".to_owned(),
                    payload: painted("blue", 2),
                },
            ]
        );
        let shed = THINGS.read::<Painted>(&mut conn, "shed", 50).await;
        assert_eq!(
            shed.expect("read"),
            Some(Vec::new()),
            "known, never changed"
        );
        let barn = THINGS.read::<Painted>(&mut conn, "barn", 50).await;
        assert_eq!(barn.expect("read"), None, "unknown");
    }
}
