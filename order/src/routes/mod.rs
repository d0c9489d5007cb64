//! The order API on one screen.
//!
//! Each handler's method and path sit in its route attribute, beside its
//! `#[utoipa::path]`; registering it here serves it and describes it in
//! `GET /openapi.json` in the same call.

mod events;
mod orders;

pub use events::EventsState;

use shared_http::openapi::ApiConfig;

pub fn routes(cfg: &mut ApiConfig<'_>) {
    cfg.service(orders::create_order) // POST /orders
        .service(orders::list_orders) // GET /orders
        .service(orders::get_order) // GET /orders/{id}
        .service(orders::cancel_order) // POST /orders/{id}/cancel
        .service(events::event_stream) // GET /events/stream
        .service(events::list_dead_letters) // GET /admin/dead-letters
        .service(events::replay_dead_letter); // POST /admin/dead-letters/{sequence}/replay
}
