//! Reservations: reserving, confirming, releasing and expiring them.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use anyhow::Context;
use shared_auth::Actor;
use shared_db::placeholders;
use shared_events::Outbox;
use shared_http::deadline::RequestDeadline;
use sqlx::{Any, AnyConnection, AssertSqlSafe, Connection, Row};

use super::items::item_from;
use super::{ConfirmOutcome, ReserveOutcome, Store};
use crate::domain::{
    Item, NewReservation, Reservation, ReservationId, ReservationStatus, ReservedLine, Sku,
};
use crate::events::{Movement, ReservationMove};

/// Most due reservations expired in one round of the sweeper; the next round
/// takes the rest, so one round never holds the writer for long.
const EXPIRY_BATCH: i64 = 500;

/// PostgreSQL's code for a broken CHECK constraint (here `stock >= 0`).
const CHECK_VIOLATION: &str = "23514";

/// A reservation in one statement on PostgreSQL (see [`Store::reserve`]):
/// `$1` the lines as JSON (`[{"sku", "quantity"}]`), `$2` the id, `$3` now,
/// `$4` the expiry, `$5` the number of lines, `$6`..`$8` the stock events'
/// templates keyed by sku (see [`Outbox::completed_insert_sql`]), which it
/// completes with each item's name, category and stock as it leaves them.
/// Returns the reservation's lines (NULL when nothing was reserved).
static RESERVE_IN_ONE_STATEMENT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{RESERVE_CHANGES}, \
         moved AS ( \
             SELECT sku AS event_key, \
                 jsonb_build_object('name', name, 'category', category, \
                 'stock', stock, 'previous_stock', stock + quantity) AS fill FROM taken \
         ), events AS ({}) \
         SELECT (SELECT lines FROM reservation) AS lines",
        Outbox::completed_insert_sql("moved", 6)
    )
});

/// The changes of [`RESERVE_IN_ONE_STATEMENT`] (its events follow them).
const RESERVE_CHANGES: &str = "\
    WITH wanted AS ( \
        SELECT w.sku, w.quantity FROM json_to_recordset($1::json) AS w(sku text, quantity bigint) \
    ), known AS ( \
        SELECT i.sku, i.name, i.category, w.quantity FROM items i JOIN wanted w ON w.sku = i.sku \
        ORDER BY i.sku FOR UPDATE OF i \
    ), reservation AS ( \
        INSERT INTO reservations (id, status, lines, created_at, expires_at, updated_at) \
        SELECT $2, 'reserved', json_agg(json_build_object('sku', sku, 'name', name, \
            'category', category, 'quantity', quantity))::text, $3, $4, $3 \
        FROM known HAVING count(*) = $5 \
        ON CONFLICT (id) DO NOTHING RETURNING lines \
    ), taken AS ( \
        UPDATE items SET stock = items.stock - w.quantity FROM wanted w \
        WHERE items.sku = w.sku AND EXISTS (SELECT 1 FROM reservation) \
        RETURNING items.sku, items.name, items.category, items.stock, w.quantity \
    )";

/// What the one-statement reservation did.
enum Taken {
    Reserved(Vec<ReservedLine>),
    /// Some line had too little stock: nothing was written.
    Short,
    /// The id was used before, or a sku is unknown: nothing was written.
    Nothing,
}

fn lines_json(lines: &[ReservedLine]) -> anyhow::Result<String> {
    serde_json::to_string(lines).context("encoding a reservation's lines")
}

/// A reservation's lines from its row (`NULL` for one that never held any).
fn lines_from(json: Option<String>) -> anyhow::Result<Vec<ReservedLine>> {
    match json {
        Some(json) => serde_json::from_str(&json).context("reading a reservation's lines"),
        None => Ok(Vec::new()),
    }
}

/// A reservation from its row; a status the code does not know is an error,
/// never read as some other status.
fn reservation_from(row: &sqlx::any::AnyRow, id: &ReservationId) -> anyhow::Result<Reservation> {
    Ok(Reservation {
        id: id.clone(),
        status: ReservationStatus::parse(&row.try_get::<String, _>("status")?)?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        lines: lines_from(row.try_get("lines")?)?,
    })
}

/// Each of `items` (as `movement` left it, in the order of `lines`) with
/// the reservation `id`'s part in it: its line's quantity.
fn moves<'a>(
    items: &[Item],
    lines: &[ReservedLine],
    movement: Movement,
    id: &'a ReservationId,
) -> Vec<(Item, ReservationMove<'a>)> {
    items
        .iter()
        .zip(lines)
        .map(|(item, line)| {
            let part = ReservationMove {
                movement,
                reservation: id,
                quantity: line.quantity,
            };
            (item.clone(), part)
        })
        .collect()
}

/// The reservations of `rows` (of [`confirm_sql`]), by id.
fn reservations_from(rows: &[sqlx::any::AnyRow]) -> anyhow::Result<HashMap<String, Reservation>> {
    let mut found = HashMap::with_capacity(rows.len());
    for row in rows {
        let raw: String = row.try_get("id")?;
        let reservation = reservation_from(row, &ReservationId::parse(&raw)?)?;
        found.insert(raw, reservation);
    }
    Ok(found)
}

/// Confirms those of `ids` ids (`$2`…) still held at `$1`, returning them.
///
/// The status and expiry tests are one expression (`IS TRUE`) on purpose: as
/// two terms, SQLite looks the rows up through `reservations_due` whenever
/// more than one id is named (it guesses that an equality on an index
/// narrows to ten rows) and then reads every reservation still held, which
/// flat out is thousands, instead of finding the ids by their key.
fn confirm_sql(ids: usize) -> String {
    format!(
        "UPDATE reservations SET status = 'confirmed', expires_at = NULL, updated_at = $1 \
         WHERE id IN ({}) AND (status = 'reserved' AND expires_at > $1) IS TRUE \
         RETURNING id, status, created_at, expires_at, lines",
        placeholders(2, ids)
    )
}

/// [`confirm_sql`] with the stock events of the lines of the reservations
/// it confirms, in one statement on PostgreSQL: each line's item is read
/// under a lock (no other movement of it commits in between), and its event
/// completed from the template keyed `"<reservation id> <sku>"`; `$(ids + 2)`
/// on are the templates' (see [`Outbox::completed_insert_sql`]).
fn confirm_with_events_sql(ids: usize) -> String {
    format!(
        "WITH confirmed AS ({}), \
         line AS ( \
             SELECT c.id, l.sku, l.quantity FROM confirmed c \
             CROSS JOIN LATERAL json_to_recordset(c.lines::json) AS l(sku text, quantity bigint) \
         ), item AS ( \
             SELECT i.sku, i.name, i.category, i.stock FROM items i \
             WHERE i.sku IN (SELECT sku FROM line) ORDER BY i.sku FOR UPDATE \
         ), moved AS ( \
             SELECT line.id || ' ' || line.sku AS event_key, \
                 jsonb_build_object('name', item.name, 'category', item.category, \
                     'stock', item.stock, 'previous_stock', item.stock) AS fill \
             FROM line JOIN item ON item.sku = line.sku \
         ), events AS ({}) \
         SELECT id, status, created_at, expires_at, lines FROM confirmed",
        confirm_sql(ids),
        Outbox::completed_insert_sql("moved", ids + 2)
    )
}

impl Store {
    /// Holds stock for every line, or for none. Repeating an id returns the
    /// reservation made the first time and holds nothing more.
    ///
    /// `deadline` is the caller's: it is checked once the writer is ours,
    /// just before anything is written, since waiting for the writer is
    /// where a busy store spends a late request's time. Past it, nothing is
    /// reserved ([`ReserveOutcome::TooLate`]).
    ///
    /// # Errors
    /// On a database error.
    #[tracing::instrument(skip_all, fields(reservation_id = new.id.as_str()))]
    pub async fn reserve(
        &self,
        new: &NewReservation,
        now: i64,
        ttl: Duration,
        deadline: RequestDeadline,
        actor: &Actor,
    ) -> anyhow::Result<ReserveOutcome> {
        let id = &new.id;
        let expires_at = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let mut conn = self.db.write().await?;
        if deadline.expired() {
            return Ok(ReserveOutcome::TooLate);
        }
        if !self.db.is_sqlite() {
            let templates = self.reserve_templates(new, actor)?;
            let taken =
                Self::reserve_in_one_statement(&mut conn, new, now, expires_at, templates).await?;
            drop(conn);
            return match taken {
                Taken::Reserved(lines) => Ok(self.created(new, now, expires_at, lines)),
                Taken::Short => self.insufficient(new).await,
                Taken::Nothing => {
                    let skus = new.lines.skus().cloned().collect();
                    self.not_reserved(id, skus, now).await
                }
            };
        }
        let mut tx = conn.begin().await?;
        let (lines, items, short) = Self::take_stock(&mut tx, new).await?;
        if short.is_empty() {
            let inserted = sqlx::query(
                "INSERT INTO reservations (id, status, lines, created_at, expires_at, updated_at) \
                 VALUES ($1, 'reserved', $2, $3, $4, $3) ON CONFLICT (id) DO NOTHING",
            )
            .bind(id.as_str())
            .bind(lines_json(&lines)?)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                let moved = moves(&items, &lines, Movement::Reserved, id);
                let events = self.stock_events(&moved, Some(actor))?;
                self.outbox.append_all(&mut tx, &events).await?;
                tx.commit().await?;
                self.outbox.committed();
                return Ok(self.created(new, now, expires_at, lines));
            }
        }
        // Stock is short, or the id was used before: either way nothing is held.
        tx.rollback().await?;
        drop(conn); // reading the first reservation back may expire it, which needs the writer
        self.not_reserved(id, short, now).await
    }

    /// The stock events of `new`'s lines for [`RESERVE_IN_ONE_STATEMENT`],
    /// keyed by sku: built before the statement from what is known then,
    /// which completes them with each item as it leaves it.
    fn reserve_templates(&self, new: &NewReservation, actor: &Actor) -> anyhow::Result<String> {
        let mut moved = Vec::with_capacity(new.lines.iter().len());
        for (sku, quantity) in new.lines.iter() {
            let unknown_yet = Item {
                sku: sku.clone(),
                name: String::new(),
                category: String::new(),
                stock: 0,
            };
            let movement = ReservationMove {
                movement: Movement::Reserved,
                reservation: &new.id,
                quantity: i64::from(quantity),
            };
            moved.push((unknown_yet, movement));
        }
        let events = self.stock_events(&moved, Some(actor))?;
        let keyed = moved.iter().map(|(item, _)| item.sku.as_str());
        self.outbox.templates(keyed.zip(events))
    }

    /// `new`, just committed with `lines` until `expires_at`: its items'
    /// stock changed.
    fn created(
        &self,
        new: &NewReservation,
        now: i64,
        expires_at: i64,
        lines: Vec<ReservedLine>,
    ) -> ReserveOutcome {
        self.changed(lines.iter().map(|l| &l.sku));
        ReserveOutcome::Created(Reservation {
            id: new.id.clone(),
            status: ReservationStatus::Reserved,
            created_at: now,
            expires_at: Some(expires_at),
            lines,
        })
    }

    /// Why nothing was reserved under `id`: the id was used before, or some
    /// of the `short` skus (all of the request's when unknown) do not exist.
    async fn not_reserved(
        &self,
        id: &ReservationId,
        short: Vec<Sku>,
        now: i64,
    ) -> anyhow::Result<ReserveOutcome> {
        if let Some(existing) = self.get_reservation(id, now).await? {
            return Ok(ReserveOutcome::Existing(existing));
        }
        let known = self.existing_skus(&short).await?;
        let unknown: Vec<Sku> = short
            .iter()
            .filter(|s| !known.contains(s))
            .cloned()
            .collect();
        Ok(if unknown.is_empty() {
            ReserveOutcome::InsufficientStock(short)
        } else {
            ReserveOutcome::UnknownSkus(unknown)
        })
    }

    /// Reserves on PostgreSQL in one statement, so that a popular item's row
    /// is locked only while the server runs it, not across the round trips
    /// of a transaction (every order of one item queues on that lock). The
    /// items are locked in sku order, the reservation is inserted only when
    /// every sku exists and the id is new, and the stock is taken only when
    /// it was; a line without enough stock breaks the `stock >= 0` check and
    /// the whole statement undoes itself.
    async fn reserve_in_one_statement(
        conn: &mut AnyConnection,
        new: &NewReservation,
        now: i64,
        expires_at: i64,
        templates: String,
    ) -> anyhow::Result<Taken> {
        let wanted: Vec<_> = new
            .lines
            .iter()
            .map(|(sku, quantity)| serde_json::json!({"sku": sku, "quantity": quantity.get()}))
            .collect();
        // Written in the code, never built from input; every value is bound.
        let query = sqlx::query(AssertSqlSafe(RESERVE_IN_ONE_STATEMENT.as_str()))
            .bind(serde_json::Value::Array(wanted).to_string())
            .bind(new.id.as_str())
            .bind(now)
            .bind(expires_at)
            .bind(i64::try_from(new.lines.iter().len()).context("too many lines")?);
        let row = Outbox::bind_templates(query, templates)
            .fetch_one(conn)
            .await;
        let row = match row {
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(CHECK_VIOLATION) => {
                return Ok(Taken::Short);
            }
            row => row?,
        };
        Ok(match row.try_get::<Option<String>, _>("lines")? {
            Some(json) => {
                let mut lines = lines_from(Some(json))?;
                lines.sort_by(|a, b| a.sku.cmp(&b.sku));
                Taken::Reserved(lines)
            }
            None => Taken::Nothing,
        })
    }

    /// The skus of `new` whose stock is below the quantity asked.
    async fn insufficient(&self, new: &NewReservation) -> anyhow::Result<ReserveOutcome> {
        let sql = format!(
            "SELECT sku, stock FROM items WHERE sku IN ({})",
            placeholders(1, new.lines.iter().len())
        );
        // Only `$n` placeholders were formatted into `sql`; every value is bound.
        let mut query = sqlx::query_as::<Any, (String, i64)>(AssertSqlSafe(sql));
        for sku in new.lines.skus() {
            query = query.bind(sku.as_str());
        }
        let stock = query.fetch_all(&mut *self.db.read().await?).await?;
        let short = new
            .lines
            .iter()
            .filter(|(sku, quantity)| {
                !stock
                    .iter()
                    .any(|(s, left)| s == sku.as_str() && *left >= i64::from(*quantity))
            })
            .map(|(sku, _)| sku.clone())
            .collect();
        Ok(ReserveOutcome::InsufficientStock(short))
    }

    /// Takes each line's quantity from its item where there is enough;
    /// returns the lines taken, their items as they left them, and the skus
    /// that were short (or unknown).
    async fn take_stock(
        tx: &mut AnyConnection,
        new: &NewReservation,
    ) -> anyhow::Result<(Vec<ReservedLine>, Vec<Item>, Vec<Sku>)> {
        let mut lines = Vec::with_capacity(new.lines.iter().len());
        let mut items = Vec::with_capacity(lines.capacity());
        let mut short = Vec::new();
        for (sku, quantity) in new.lines.iter() {
            let taken = sqlx::query(
                "UPDATE items SET stock = stock - $1 WHERE sku = $2 AND stock >= $1 \
                 RETURNING sku, name, category, stock",
            )
            .bind(i64::from(quantity))
            .bind(sku.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            match taken {
                None => short.push(sku.clone()),
                Some(row) => {
                    let item = item_from(&row)?;
                    lines.push(ReservedLine {
                        sku: sku.clone(),
                        name: item.name.clone(),
                        category: item.category.clone(),
                        quantity: i64::from(quantity),
                    });
                    items.push(item);
                }
            }
        }
        Ok((lines, items, short))
    }

    async fn existing_skus(&self, skus: &[Sku]) -> anyhow::Result<Vec<Sku>> {
        let sql = format!(
            "SELECT sku FROM items WHERE sku IN ({})",
            placeholders(1, skus.len())
        );
        // Only `$n` placeholders were formatted into `sql`; every value is bound.
        let mut query = sqlx::query_scalar::<Any, String>(AssertSqlSafe(sql));
        for sku in skus {
            query = query.bind(sku.as_str());
        }
        let found = query.fetch_all(&mut *self.db.read().await?).await?;
        Ok(found
            .iter()
            .map(|s| Sku::parse(s))
            .collect::<Result<_, _>>()?)
    }

    /// Keeps a reservation's stock for good.
    ///
    /// # Errors
    /// On a database error.
    pub async fn confirm(
        &self,
        id: &ReservationId,
        now: i64,
        actor: &Actor,
    ) -> anyhow::Result<ConfirmOutcome> {
        let mut outcomes = self
            .confirm_all(std::slice::from_ref(id), now, actor)
            .await?;
        Ok(outcomes
            .pop()
            .map_or(ConfirmOutcome::NotFound, |(_, outcome)| outcome))
    }

    /// Keeps the stock of every reservation in `ids` for good, in one
    /// statement (with events on, in one transaction with the stock events
    /// of their lines); says what became of each, in the order asked.
    ///
    /// # Errors
    /// On a database error.
    #[tracing::instrument(skip_all, fields(reservations = ids.len()))]
    pub async fn confirm_all(
        &self,
        ids: &[ReservationId],
        now: i64,
        actor: &Actor,
    ) -> anyhow::Result<Vec<(ReservationId, ConfirmOutcome)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Only `$n` placeholders are formatted into it; every value is bound.
        let mut query = sqlx::query(AssertSqlSafe(confirm_sql(ids.len()))).bind(now);
        for id in ids {
            query = query.bind(id.as_str());
        }
        let mut conn = self.db.write().await?;
        let mut confirmed = if self.outbox.is_on() && !self.db.is_sqlite() {
            self.confirm_in_one_statement(&mut conn, ids, now, actor)
                .await?
        } else if self.outbox.is_on() {
            let mut tx = conn.begin().await?;
            let confirmed = reservations_from(&query.fetch_all(&mut *tx).await?)?;
            self.append_confirmed(&mut tx, confirmed.values(), actor)
                .await?;
            tx.commit().await?;
            self.outbox.committed();
            confirmed
        } else {
            reservations_from(&query.fetch_all(&mut *conn).await?)?
        };
        // Reading one back below may expire it, which needs the writer.
        drop(conn);
        let mut outcomes = Vec::with_capacity(ids.len());
        for id in ids {
            // Not confirmed just now: confirmed before, too late, or unknown.
            let outcome = match confirmed.remove(id.as_str()) {
                Some(r) => ConfirmOutcome::Confirmed(r),
                None => match self.get_reservation(id, now).await? {
                    None => ConfirmOutcome::NotFound,
                    Some(r) if r.status == ReservationStatus::Confirmed => {
                        ConfirmOutcome::Confirmed(r)
                    }
                    Some(r) => ConfirmOutcome::TooLate(r),
                },
            };
            outcomes.push((id.clone(), outcome));
        }
        Ok(outcomes)
    }

    /// Confirms those of `ids` still held, with their lines' stock events, in
    /// one statement (PostgreSQL): [`confirm_with_events_sql`]. The events'
    /// templates come from the reservations' lines, read first (a reservation's
    /// lines never change once made); only the reservations that read found
    /// are confirmed, so none is confirmed without its events.
    async fn confirm_in_one_statement(
        &self,
        conn: &mut AnyConnection,
        ids: &[ReservationId],
        now: i64,
        actor: &Actor,
    ) -> anyhow::Result<HashMap<String, Reservation>> {
        let found = Self::lines_of(conn, ids).await?;
        if found.is_empty() {
            return Ok(HashMap::new());
        }
        let templates = self.confirm_templates(&found, actor)?;
        let statement = confirm_with_events_sql(found.len());
        // Written in the code (only `$n` placeholders formatted in); every value is bound.
        let mut query = sqlx::query(AssertSqlSafe(statement)).bind(now);
        for (id, _) in &found {
            query = query.bind(id.as_str());
        }
        let rows = Outbox::bind_templates(query, templates)
            .fetch_all(&mut *conn)
            .await?;
        self.outbox.committed();
        reservations_from(&rows)
    }

    /// The lines of those of `ids` that name a reservation.
    async fn lines_of(
        conn: &mut AnyConnection,
        ids: &[ReservationId],
    ) -> anyhow::Result<Vec<(ReservationId, Vec<ReservedLine>)>> {
        let sql = format!(
            "SELECT id, lines FROM reservations WHERE id IN ({})",
            placeholders(1, ids.len())
        );
        // Only `$n` placeholders were formatted into `sql`; every value is bound.
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id.as_str());
        }
        let mut found = Vec::with_capacity(ids.len());
        for row in query.fetch_all(&mut *conn).await? {
            let id = ReservationId::parse(&row.try_get::<String, _>("id")?)?;
            found.push((id, lines_from(row.try_get("lines")?)?));
        }
        Ok(found)
    }

    /// The templates of [`confirm_with_events_sql`]: the confirmation of
    /// each line of `found`, keyed `"<reservation id> <sku>"`.
    fn confirm_templates(
        &self,
        found: &[(ReservationId, Vec<ReservedLine>)],
        actor: &Actor,
    ) -> anyhow::Result<String> {
        let mut moved = Vec::new();
        let mut keys = Vec::new();
        for (id, lines) in found {
            for line in lines {
                let item = Item {
                    sku: line.sku.clone(),
                    name: line.name.clone(),
                    category: line.category.clone(),
                    stock: 0, // the statement sets it (and the name and category)
                };
                let part = ReservationMove {
                    movement: Movement::Confirmed,
                    reservation: id,
                    quantity: line.quantity,
                };
                moved.push((item, part));
                keys.push(format!("{} {}", id.as_str(), line.sku));
            }
        }
        let events = self.stock_events(&moved, Some(actor))?;
        self.outbox
            .templates(keys.iter().map(String::as_str).zip(events))
    }

    /// Writes the stock events of `confirmed`'s lines, each with its item as
    /// it stands (on SQLite, whose writer the caller holds: nothing else
    /// moves in between; PostgreSQL confirms in one statement instead).
    async fn append_confirmed(
        &self,
        tx: &mut AnyConnection,
        confirmed: impl Iterator<Item = &Reservation> + Clone,
        actor: &Actor,
    ) -> anyhow::Result<()> {
        let skus: std::collections::BTreeSet<&str> = confirmed
            .clone()
            .flat_map(|r| r.lines.iter().map(|l| l.sku.as_str()))
            .collect();
        if skus.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "SELECT sku, name, category, stock FROM items WHERE sku IN ({})",
            placeholders(1, skus.len())
        );
        // Only `$n` placeholders were formatted in; every value is bound.
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for sku in &skus {
            query = query.bind(*sku);
        }
        let mut items = HashMap::with_capacity(skus.len());
        for row in query.fetch_all(&mut *tx).await? {
            let item = item_from(&row)?;
            items.insert(item.sku.as_str().to_owned(), item);
        }
        let mut moved = Vec::new();
        for reservation in confirmed {
            let found = (reservation.lines.iter())
                .map(|l| items.get(l.sku.as_str()).cloned().context("an item gone"))
                .collect::<anyhow::Result<Vec<Item>>>()?;
            let id = &reservation.id;
            moved.extend(moves(&found, &reservation.lines, Movement::Confirmed, id));
        }
        let events = self.stock_events(&moved, Some(actor))?;
        self.outbox.append_all(tx, &events).await
    }

    /// Gives a reservation's stock back, whether it was reserved or confirmed.
    /// Releasing an unknown id records it as released, so that a reservation
    /// request arriving late (after its caller gave up) holds nothing.
    ///
    /// # Errors
    /// On a database error.
    #[tracing::instrument(skip_all, fields(reservation_id = id.as_str()))]
    pub async fn release(&self, id: &ReservationId, now: i64, actor: &Actor) -> anyhow::Result<()> {
        let mut conn = self.db.write().await?;
        let mut tx = conn.begin().await?;
        let released = sqlx::query(
            "UPDATE reservations SET status = 'released', expires_at = NULL, updated_at = $1 \
             WHERE id = $2 AND status IN ('reserved', 'confirmed') RETURNING lines",
        )
        .bind(now)
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let mut lines = Vec::new();
        if let Some(row) = released {
            lines = lines_from(row.try_get("lines")?)?;
            let items = Self::restore_stock(&mut tx, &lines).await?;
            let moved = moves(&items, &lines, Movement::Released, id);
            let events = self.stock_events(&moved, Some(actor))?;
            self.outbox.append_all(&mut tx, &events).await?;
        } else {
            sqlx::query(
                "INSERT INTO reservations (id, status, lines, created_at, expires_at, updated_at) \
                 VALUES ($1, 'released', '[]', $2, NULL, $2) ON CONFLICT (id) DO NOTHING",
            )
            .bind(id.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.outbox.committed();
        self.changed(lines.iter().map(|l| &l.sku));
        Ok(())
    }

    /// Expires one reservation if it is still reserved and due; returns whether it did.
    async fn expire(&self, id: &ReservationId, now: i64) -> anyhow::Result<bool> {
        let mut conn = self.db.write().await?;
        let mut tx = conn.begin().await?;
        let expired = sqlx::query(
            "UPDATE reservations SET status = 'expired', expires_at = NULL, updated_at = $1 \
             WHERE id = $2 AND status = 'reserved' AND expires_at <= $1 RETURNING lines",
        )
        .bind(now)
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = expired else {
            tx.rollback().await?;
            return Ok(false);
        };
        let lines = lines_from(row.try_get("lines")?)?;
        let items = Self::restore_stock(&mut tx, &lines).await?;
        self.append(&mut tx, || {
            let make = self
                .expiry_event
                .context("no event is given for expiries (see Store::with_expiry_event)")?;
            make(id, &lines, now)
        })
        .await?;
        let moved = moves(&items, &lines, Movement::Expired, id);
        let events = self.stock_events(&moved, None)?;
        self.outbox.append_all(&mut tx, &events).await?;
        tx.commit().await?;
        self.outbox.committed();
        self.changed(lines.iter().map(|l| &l.sku));
        Ok(true)
    }

    /// Gives each line's quantity back to its item (lines are in sku order,
    /// so concurrent transactions on PostgreSQL lock rows in the same order);
    /// returns the items as it left them, in the order of `lines`.
    async fn restore_stock(
        tx: &mut AnyConnection,
        lines: &[ReservedLine],
    ) -> anyhow::Result<Vec<Item>> {
        let mut items = Vec::with_capacity(lines.len());
        for line in lines {
            let row = sqlx::query(
                "UPDATE items SET stock = stock + $1 WHERE sku = $2 \
                 RETURNING sku, name, category, stock",
            )
            .bind(line.quantity)
            .bind(line.sku.as_str())
            .fetch_one(&mut *tx)
            .await
            .with_context(|| format!("giving back the stock of {}", line.sku))?;
            items.push(item_from(&row)?);
        }
        Ok(items)
    }

    /// Expires every reservation that is due; returns how many.
    ///
    /// # Errors
    /// On a database error.
    pub async fn expire_due(&self, now: i64) -> anyhow::Result<u64> {
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM reservations WHERE status = 'reserved' AND expires_at <= $1 \
             ORDER BY expires_at LIMIT $2",
        )
        .bind(now)
        .bind(EXPIRY_BATCH)
        .fetch_all(&mut *self.db.read().await?)
        .await?;
        let mut expired = 0;
        for id in &due {
            let id = ReservationId::parse(id)
                .with_context(|| format!("reservation {id:?}: not a reservation id"))?;
            if self.expire(&id, now).await? {
                expired += 1;
            }
        }
        Ok(expired)
    }

    /// A reservation with its lines. One found reserved past its expiry is
    /// expired first, so callers never see a stale `reserved`.
    ///
    /// # Errors
    /// On a database error.
    pub async fn get_reservation(
        &self,
        id: &ReservationId,
        now: i64,
    ) -> anyhow::Result<Option<Reservation>> {
        let Some(row) = sqlx::query(
            "SELECT status, created_at, expires_at, lines FROM reservations WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&mut *self.db.read().await?)
        .await?
        else {
            return Ok(None);
        };
        let reservation = reservation_from(&row, id)
            .with_context(|| format!("reservation {id:?} cannot be read", id = id.as_str()))?;
        let due = reservation.expires_at.is_some_and(|at| at <= now);
        if reservation.status == ReservationStatus::Reserved && due {
            self.expire(id, now).await?;
            return Box::pin(self.get_reservation(id, now)).await;
        }
        Ok(Some(reservation))
    }

    /// Copies the lines of reservations made before lines moved into the
    /// reservation's row (migration 20261126000001) out of `reservation_lines`,
    /// then empties it. Returns how many reservations it updated: none after
    /// the first start.
    pub(super) async fn move_legacy_lines(&self) -> anyhow::Result<usize> {
        let rows = sqlx::query(
            "SELECT l.reservation_id, l.sku, i.name, i.category, l.quantity \
             FROM reservation_lines l JOIN items i ON i.sku = l.sku \
             ORDER BY l.reservation_id, l.sku",
        )
        .fetch_all(&mut *self.db.read().await?)
        .await?;
        let lines = rows
            .iter()
            .map(|row| {
                let line = ReservedLine {
                    sku: Sku::parse(&row.try_get::<String, _>("sku")?)?,
                    name: row.try_get("name")?,
                    category: row.try_get("category")?,
                    quantity: row.try_get("quantity")?,
                };
                Ok((row.try_get("reservation_id")?, line))
            })
            .collect::<anyhow::Result<_>>()?;
        self.db
            .move_into_json_column("reservations", "lines", "reservation_lines", lines)
            .await
    }
}

#[cfg(test)]
mod tests {
    use shared_db::DatabaseConfig;
    use shared_events::Outbox;

    use super::*;

    #[actix_web::test]
    async fn confirming_finds_the_reservations_by_their_key_however_many() {
        let dir = std::env::temp_dir().join(format!("inventory-plan-{}", std::process::id()));
        let config = DatabaseConfig::sqlite_file(&dir.join("inventory.db"));
        let store = Store::connect(&config, Outbox::off()).await.expect("store");
        for ids in [1, 2, 100] {
            let explain = format!("EXPLAIN QUERY PLAN {}", confirm_sql(ids));
            let mut query = sqlx::query(AssertSqlSafe(explain)).bind(0_i64);
            for i in 0..ids {
                query = query.bind(format!("r{i}"));
            }
            let rows = query
                .fetch_all(&mut *store.db.read().await.expect("reader"))
                .await
                .expect("a plan");
            let plan: Vec<String> = rows
                .iter()
                .map(|row| row.try_get("detail").expect("detail"))
                .collect();
            assert!(
                plan.iter().any(|step| step.contains("(id=?)")) && plan.len() == 1,
                "{ids} ids: {plan:?}"
            );
        }
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }
}
