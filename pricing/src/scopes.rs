//! The token scopes pricing's routes need (`shared_auth` checks them).
//!
//! With auth off, or on without `AUTH_REQUIRED`, anonymous callers pass.

use shared_auth::Scope;

/// Setting prices and reading their history: operators.
pub struct WritePrices;

impl Scope for WritePrices {
    const NAME: &'static str = "pricing:write";
}
