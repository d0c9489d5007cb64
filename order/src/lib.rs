//! The order service: takes orders as a small saga over inventory and pricing.
//!
//! An order is recorded `pending`, its stock is reserved at inventory (the
//! reservation id is the order id, so a retried call is harmless), prices are
//! fetched, the reservation is confirmed, and only then is the order
//! `confirmed` (or `pending_pricing`). Any failure after reserving releases
//! the reservation; a crash leaves it to expire at inventory.
//!
//! Each dependency sits behind its own circuit breaker and a per-call timeout.
//! Without inventory no order can be taken (503 + `Retry-After`); without
//! pricing orders are still taken, priced from the last price seen for each
//! sku and marked `"pricing": "fallback"`.
//!
//! # Layout
//! - [`config`]: environment -> [`config::Config`].
//! - [`domain`]: validated types and the pricing rule for order lines.
//! - [`history`]: a customer's orders page by page (status filter, cursor).
//! - [`events`]: the event each order status change publishes (its data).
//! - [`store`]: all SQL (orders, their lines, last-seen prices, the outbox).
//! - [`clients`]: typed awc clients for inventory and pricing, behind the breakers.
//! - [`scopes`]: who may place, see and cancel which orders (`orders:admin`).
//! - [`saga`]: the order flow (place, cancel), one step at a time.
//! - [`metrics`]: orders by outcome and pricing source, downstream calls.
//! - [`recovery`]: resolving orders a dead process left pending.
//! - [`consumers`]: price changes into last-seen prices; expired reservations
//!   resolve their pending orders at once.
//! - [`error`]: the error enum and its problem+json mapping.
//! - [`routes`]: handlers and the route table (orders; the events stream and
//!   dead letters).
//! - [`startup`]: wiring it all into a running server.

pub mod clients;
pub mod config;
pub mod consumers;
pub mod domain;
pub mod error;
pub mod events;
pub mod history;
pub mod metrics;
pub mod recovery;
pub mod routes;
pub mod saga;
pub mod scopes;
pub mod startup;
pub mod store;
