//! The token scopes inventory's routes need (`shared_auth` checks them).
//!
//! With auth off, or on without `AUTH_REQUIRED`, anonymous callers pass
//! (except where `SERVICE_TOKEN` guards the reservation routes, as always).

use shared_auth::Scope;

/// Holding and releasing stock: the order service's client credentials, or
/// `SERVICE_TOKEN`.
pub struct ReserveStock;

impl Scope for ReserveStock {
    const NAME: &'static str = "inventory:reserve";
}

/// Creating items, changing stock and reading their history: operators.
pub struct WriteCatalogue;

impl Scope for WriteCatalogue {
    const NAME: &'static str = "inventory:write";
}
