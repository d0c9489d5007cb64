//! All of inventory's SQL, behind domain-level methods.
//!
//! Every method that changes stock is one transaction whose first statement
//! writes: on SQLite that takes the write lock up front (no lock-upgrade
//! deadlocks), on PostgreSQL it row-locks what it changes (a reservation
//! there is a single statement: see `RESERVE_IN_ONE_STATEMENT`). Stock
//! moves only through conditional updates (`… WHERE stock >= $1`) or under
//! the `stock >= 0` check, so it cannot go negative whatever the concurrency.
//! Status changes are conditional too (`… WHERE status = 'reserved'`), which
//! makes confirm, release and expiry race-free against each other on any
//! number of replicas.
//!
//! The store builds no events: a change that publishes one is given a
//! function from its caller (the domain's, in `crate::events`) that builds
//! the event from what the change left, and writes what it returns into
//! the outbox in the change's own transaction. Where a change is one
//! statement on PostgreSQL (a reservation, a batch of confirmations), the
//! function builds each event before it, and the statement completes them
//! with what it leaves (each item's name, category and stock; see
//! `shared_events::Outbox::completed_insert_sql`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use shared_db::Database;
use shared_db::DatabaseConfig;
use shared_db::read_cache::ReadCache;
use sqlx::AnyConnection;

use shared_events::{CloudEvent, Outbox};

use shared_auth::Actor;

use crate::domain::{Item, ReservationId, ReservedLine, Sku};
use crate::events::ReservationMove;

mod history;
mod items;
mod outcomes;
mod reservations;

pub use items::{Category, ItemFilter};
pub use outcomes::{AdjustOutcome, ConfirmOutcome, PutItemOutcome, ReserveOutcome};

/// Inventory's data. Cheap to clone (the pools are shared).
#[derive(Clone)]
pub struct Store {
    db: Database,
    /// Where catalogue changes and stock movements write their events, in their
    /// own transaction (a no-op while events are off).
    outbox: Outbox,
    /// Items as `GET /items/{sku}` last read them (see [`Store::get_item`]).
    items: Arc<ReadCache<Sku, Item>>,
    /// Builds the event of an expiry (see [`Store::with_expiry_event`]).
    expiry_event: Option<ExpiryEvent>,
    /// Builds the event of a reservation's stock movement (see
    /// [`Store::with_stock_event`]).
    stock_event: Option<StockEvent>,
}

/// Builds the event of the reservation `id`, holding `lines`, expired at
/// `now` (ms): the domain's `crate::events::reservation_expired`. The store
/// writes what it returns in the expiry's own transaction.
pub type ExpiryEvent = fn(&ReservationId, &[ReservedLine], i64) -> anyhow::Result<CloudEvent>;

/// Builds the event of `item` (as it is after the movement) whose stock a
/// reservation moved, made by `actor` (`None`: inventory itself, an
/// expiry): the domain's `crate::events::reservation_moved`. The store
/// writes what it returns in the movement's own transaction.
pub type StockEvent = fn(&Item, &ReservationMove<'_>, Option<&Actor>) -> anyhow::Result<CloudEvent>;

/// Most items kept in memory at once.
const ITEM_CACHE_CAPACITY: usize = 10_000;

impl Store {
    /// Connects and brings the schema up to date; changes write their events
    /// to `outbox`.
    ///
    /// # Errors
    /// When the database cannot be reached or a migration fails.
    pub async fn connect(config: &DatabaseConfig, outbox: Outbox) -> anyhow::Result<Self> {
        let db = Database::connect(config).await?;
        db.migrate(sqlx::migrate!("./migrations"))
            .await
            .context("migrating the inventory store")?;
        let store = Self {
            db,
            outbox,
            items: Arc::new(ReadCache::new(Duration::ZERO, 0)),
            expiry_event: None,
            stock_event: None,
        };
        let moved = store
            .move_legacy_lines()
            .await
            .context("moving reservation lines into their reservations")?;
        if moved > 0 {
            tracing::info!(
                reservations = moved,
                "moved the lines of earlier reservations into their rows"
            );
        }
        Ok(store)
    }

    /// The store with `GET /items/{sku}` answered from memory for up to
    /// `ttl` (zero: never).
    #[must_use]
    pub fn with_item_cache(mut self, ttl: Duration) -> Self {
        self.items = Arc::new(ReadCache::new(ttl, ITEM_CACHE_CAPACITY));
        self
    }

    /// The store with expiries writing the event `event` builds. Without
    /// one, expiring a reservation fails while events are on (rather than
    /// leave the expiry unpublished).
    #[must_use]
    pub fn with_expiry_event(mut self, event: ExpiryEvent) -> Self {
        self.expiry_event = Some(event);
        self
    }

    /// The store with reservations, confirmations, releases and expiries
    /// writing the stock event `event` builds for each item they move.
    /// Without one, they fail while events are on (rather than leave a
    /// movement unpublished).
    #[must_use]
    pub fn with_stock_event(mut self, event: StockEvent) -> Self {
        self.stock_event = Some(event);
        self
    }

    /// The events of the items in `moved`, each as its movement left it;
    /// none while events are off.
    fn stock_events(
        &self,
        moved: &[(Item, ReservationMove<'_>)],
        actor: Option<&Actor>,
    ) -> anyhow::Result<Vec<CloudEvent>> {
        if !self.outbox.is_on() {
            return Ok(Vec::new());
        }
        let make = self
            .stock_event
            .context("no event is given for stock movements (see Store::with_stock_event)")?;
        moved
            .iter()
            .map(|(item, movement)| make(item, movement, actor))
            .collect()
    }

    /// Forgets the cached items of `skus`, which this process has just
    /// changed (call it once the change is committed).
    fn changed<'a>(&self, skus: impl IntoIterator<Item = &'a Sku>) {
        self.items.forget(skus);
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Writes the event `make` builds (the caller's) into the open
    /// transaction `tx`; builds nothing while events are off.
    async fn append(
        &self,
        tx: &mut AnyConnection,
        make: impl FnOnce() -> anyhow::Result<CloudEvent>,
    ) -> anyhow::Result<()> {
        if !self.outbox.is_on() {
            return Ok(());
        }
        self.outbox
            .append(tx, &make()?)
            .await
            .context("writing an event to the outbox")
    }
}
