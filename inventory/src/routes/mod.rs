//! The inventory API on one screen.

mod items;
mod reservations;

pub use reservations::ReservationTtl;

use actix_web::middleware::from_fn;
use actix_web::web;
use shared::auth::require_service_token;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/items").route(web::get().to(items::list_items)))
        .service(web::resource("/items/{sku}").route(web::get().to(items::get_item)))
        .service(web::resource("/categories").route(web::get().to(items::list_categories)))
        .service(
            // Only the order service holds stock: these need SERVICE_TOKEN when it is set.
            web::scope("/reservations")
                .wrap(from_fn(require_service_token))
                .service(web::resource("").route(web::post().to(reservations::create_reservation)))
                .service(
                    web::resource("/{id}")
                        .route(web::get().to(reservations::get_reservation))
                        .route(web::delete().to(reservations::release_reservation)),
                )
                .service(
                    web::resource("/{id}/confirm")
                        .route(web::post().to(reservations::confirm_reservation)),
                ),
        );
}
