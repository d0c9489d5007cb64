//! The shop's words that more than one service speaks: the stock-keeping
//! unit, lines of skus with quantities, and money.
//!
//! This is the one crate under `shared/` that knows the business, and it
//! holds only what travels between services in requests and events; each
//! service's own rules stay in that service.
//!
//! - [`money`]: integer minor units, rendered as decimals only at the edge.
//! - [`sku`]: the stock-keeping unit all services share.
//! - [`lines`] (sku): sku lines with quantities, their limits, and the
//!   `skus`-or-`items` request shape.

pub mod lines;
pub mod money;
pub mod sku;
