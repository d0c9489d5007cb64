//! The pricing service: base prices, discounts and quantity tiers.
//!
//! Prices live in the service's own store (embedded SQLite, or PostgreSQL by
//! `DATABASE_URL`), seeded from a catalogue file (shipped in the crate, or
//! `PRICING_CATALOG`) when empty; the file also gives the currency and the
//! catalogue-wide quantity tiers. Operators set prices with `PUT /price/{sku}`
//! (`pricing:write`), each change recorded with who and when. All arithmetic
//! is in integer cents.
//!
//! # Layout
//! - [`config`]: environment -> [`config::Config`].
//! - [`domain`]: [`domain::PriceRules`], [`domain::PriceEntry`] and the pricing rules (unit-tested without HTTP).
//! - [`events`]: the event it publishes (a price changed).
//! - [`store`]: all SQL, behind domain-level methods; writes the event of a
//!   price change to the outbox in the same transaction.
//! - [`scopes`]: the scopes its routes need (setting prices).
//! - [`error`]: the service's error enum and its problem+json mapping.
//! - [`routes`]: the HTTP handlers and the route table.
//! - [`startup`]: wires it together into a running server.

pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod routes;
pub mod scopes;
pub mod startup;
pub mod store;
