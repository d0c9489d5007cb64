//! The pricing API on one screen.
//!
//! Each handler's method and path sit in its route attribute, beside its
//! `#[utoipa::path]`; registering it here serves it and describes it in
//! `GET /openapi.json` in the same call.

mod management;
mod prices;

use shared_http::openapi::ApiConfig;
use shared_http::problem::other_methods_not_allowed;

pub fn routes(cfg: &mut ApiConfig<'_>) {
    cfg.service(prices::list_prices) // GET /prices
        .service(prices::bulk_prices) // POST /price/bulk
        // Any other method on /price/bulk is a 405, not a price lookup of sku "bulk".
        .map(|cfg| cfg.service(other_methods_not_allowed("/price/bulk")))
        .service(prices::get_price) // GET /price/{sku}
        // Operators only: each handler needs `pricing:write`, see `crate::scopes`.
        .service(management::put_price) // PUT /price/{sku}
        .service(management::price_history); // GET /price/{sku}/history
}
