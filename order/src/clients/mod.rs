//! Typed HTTP clients for the services the order flow calls.
//!
//! Each goes through a [`Downstream`] (`shared_resilience::downstream`): the
//! breaker, bulkhead, retries, deadline and credentials of every call.
//!
//! Answers are read tolerantly: each type names the fields the order flow
//! reads and ignores any other (never `deny_unknown_fields` here), so that
//! a newer inventory or pricing may add fields without a deploy order.

mod confirm_route;
mod confirmations;
mod inventory;
mod pricing;

pub use confirm_route::{ConfirmRoute, RECHECK_AFTER};
pub use confirmations::Confirmations;
pub use inventory::{InventoryClient, InventoryError, Reservation, ReservationStatus};
pub use pricing::{PriceOut, PricingClient};
pub use shared_resilience::downstream::{
    Call, CallError, CallPolicy, Credentials, DependencyCheck, Downstream, Guards, Retries,
};

use crate::domain::Sku;

/// The skus an answer's problem body lists (its `skus` member); an entry
/// that is not a sku is left out.
fn problem_skus(error: &CallError) -> Vec<Sku> {
    error
        .problem()
        .and_then(|problem| problem["skus"].as_array())
        .map(|skus| {
            skus.iter()
                .filter_map(|v| Sku::parse(v.as_str()?).ok())
                .collect()
        })
        .unwrap_or_default()
}
