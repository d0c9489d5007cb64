//! The inventory API on one screen.
//!
//! Each handler's method and path sit in its route attribute, beside its
//! `#[utoipa::path]`; registering it here serves it and describes it in
//! `GET /openapi.json` in the same call.

mod catalogue;
mod items;
mod reservations;

pub use reservations::ReservationTtl;

use shared_http::openapi::{ApiConfig, scope};

pub fn routes(cfg: &mut ApiConfig<'_>) {
    cfg.service(items::list_items) // GET /items
        .service(items::get_item) // GET /items/{sku}
        .service(items::list_categories) // GET /categories
        // Operators only: each handler needs `inventory:write`, see `crate::scopes`.
        .service(catalogue::put_item) // PUT /items/{sku}
        .service(catalogue::adjust_stock) // POST /items/{sku}/stock
        .service(catalogue::item_history) // GET /items/{sku}/history
        // Only the order service holds stock: each reservation handler needs
        // the reservation scope (or SERVICE_TOKEN), see `crate::scopes`.
        .service(reservations::confirm_reservations) // POST /reservation-confirmations
        .service(
            scope("/reservations")
                .service(reservations::create_reservation) // POST /reservations
                .service(reservations::get_reservation) // GET /reservations/{id}
                .service(reservations::release_reservation) // DELETE /reservations/{id}
                .service(reservations::confirm_reservation), // POST /reservations/{id}/confirm
        );
}
