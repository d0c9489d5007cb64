//! The pricing service: base prices, discounts and quantity tiers.
//!
//! Prices come from a catalogue file (shipped in the crate, or
//! `PRICING_CATALOG`) loaded once at start-up into an immutable [`domain::PriceBook`]
//! that every worker reads without locks. All arithmetic is in integer cents.
//!
//! # Layout
//! - [`config`]: environment -> [`config::Config`].
//! - [`domain`]: [`domain::PriceBook`] and the pricing rules (unit-tested without HTTP).
//! - [`error`]: the service's error enum and its problem+json mapping.
//! - [`routes`]: the HTTP handlers and the route table.
//! - [`startup`]: wires it together into a running server.

pub mod config;
pub mod domain;
pub mod error;
pub mod routes;
pub mod startup;
