//! CORS from `CORS_ALLOWED_ORIGINS`, so the browser client can call the
//! services directly when it is not served from behind the gateway.

use actix_cors::Cors;
use actix_web::http::header;

use crate::config::AllowedOrigins;

pub fn cors(origins: &AllowedOrigins) -> Cors {
    let cors = Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "DELETE", "OPTIONS"])
        .allow_any_header()
        .expose_headers([
            header::HeaderName::from_static("x-request-id"),
            header::RETRY_AFTER,
            header::LOCATION,
        ])
        .max_age(3600);
    match origins {
        AllowedOrigins::Any => cors.allow_any_origin(),
        AllowedOrigins::List(list) => list.iter().fold(cors, |cors, o| cors.allowed_origin(o)),
    }
}
