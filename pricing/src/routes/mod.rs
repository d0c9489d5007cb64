//! The pricing API on one screen.

mod prices;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/prices").route(web::get().to(prices::list_prices)))
        .service(web::resource("/price/bulk").route(web::post().to(prices::bulk_prices)))
        .service(web::resource("/price/{sku}").route(web::get().to(prices::get_price)));
}
