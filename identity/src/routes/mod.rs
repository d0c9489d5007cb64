//! The identity API on one screen.
//!
//! Each handler's method and path sit in its route attribute, beside its
//! `#[utoipa::path]`; registering it here serves it and describes it in
//! `GET /openapi.json` in the same call.

mod accounts;
mod discovery;
mod sessions;
mod token;

use actix_web::HttpResponseBuilder;
use actix_web::http::header;
use shared_http::openapi::ApiConfig;

pub use sessions::Operators;

pub fn routes(cfg: &mut ApiConfig<'_>) {
    cfg.service(accounts::create_account) // POST /accounts
        .service(sessions::create_session) // POST /sessions
        .service(token::issue_token) // POST /token
        .service(discovery::openid_configuration) // GET /.well-known/openid-configuration
        .service(discovery::jwks); // GET /.well-known/jwks.json
}

/// A response carrying a token must not be stored by any cache (RFC 6749 §5.1).
fn no_store(response: &mut HttpResponseBuilder) -> &mut HttpResponseBuilder {
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
}
