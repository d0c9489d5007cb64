//! The order API on one screen.
//!
//! Each handler's method and path sit in its route attribute, beside its
//! `#[utoipa::path]`; registering it here serves it and describes it in
//! `GET /openapi.json` in the same call.

mod events;
mod orders;

pub use events::EventsState;

use actix_web::web;
use shared_http::openapi::ApiConfig;

/// The routes. The events' exist only with events on (`events`: what they
/// read), as `/admin/chaos` only with `CHAOS_CONTROL=on`: with events off
/// they are unknown paths (404) and absent from the description.
pub fn routes(events: Option<web::Data<EventsState>>) -> impl Fn(&mut ApiConfig<'_>) + Clone {
    move |cfg| {
        cfg.service(orders::create_order) // POST /orders
            .service(orders::list_orders) // GET /orders
            .service(orders::get_order) // GET /orders/{id}
            .service(orders::cancel_order); // POST /orders/{id}/cancel
        if let Some(state) = &events {
            cfg.app_data(state.clone())
                .service(events::event_stream) // GET /events/stream
                .service(events::list_dead_letters) // GET /admin/dead-letters
                .service(events::replay_dead_letter); // POST /admin/dead-letters/{sequence}/replay
        }
    }
}
