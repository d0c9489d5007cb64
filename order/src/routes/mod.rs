//! The order API on one screen.

mod orders;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/orders")
            .route(web::post().to(orders::create_order))
            .route(web::get().to(orders::list_orders)),
    )
    .service(web::resource("/orders/{id}").route(web::get().to(orders::get_order)))
    .service(web::resource("/orders/{id}/cancel").route(web::post().to(orders::cancel_order)));
}
