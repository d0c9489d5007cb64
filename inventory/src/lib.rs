//! The inventory service: items, stock, and reservations that expire.
//!
//! Stock is what can still be ordered. A reservation takes stock at once, all
//! lines or none; confirming keeps it for good; releasing or expiring gives it
//! back. A background task expires reservations that were not confirmed within
//! the TTL, so a caller that dies mid-way loses no stock. Every stock change is
//! a conditional `UPDATE … WHERE stock >= n` inside a transaction, so stock
//! never goes below zero however many requests or replicas race.
//!
//! # Layout
//! - [`config`]: environment -> [`config::Config`].
//! - [`domain`]: validated types (`Sku`, `NewReservation`, …).
//! - [`store`]: all SQL, behind domain-level methods; writes the events of
//!   its changes to the outbox in the same transaction.
//! - [`events`]: the events it publishes (stock changes, expired reservations).
//! - [`expiry`]: the background task that expires due reservations.
//! - [`metrics`]: reservations by outcome, expiries.
//! - [`scopes`]: the scopes its routes need (reserving stock, managing the catalogue).
//! - [`error`]: the error enum and its problem+json mapping.
//! - [`routes`]: handlers and the route table.
//! - [`startup`]: wiring it all into a running server.

pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod expiry;
pub mod metrics;
pub mod routes;
pub mod scopes;
pub mod startup;
pub mod store;
