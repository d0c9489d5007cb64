//! CORS from `CORS_ALLOWED_ORIGINS`, so the browser client can call the
//! services directly when it is not served from behind the gateway.

use actix_cors::Cors;
use actix_web::http::header;

use std::str::FromStr;

use shared_config::is_http_url;

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

/// Which origins may call the services from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    Any,
    List(Vec<String>),
}

impl FromStr for AllowedOrigins {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let origins: Vec<&str> = s
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .collect();
        if origins.is_empty() || origins.contains(&"*") {
            return Ok(Self::Any);
        }
        for origin in &origins {
            if !is_http_url(origin) {
                return Err(format!(
                    "origin {origin:?} must start with http:// or https://"
                ));
            }
        }
        Ok(Self::List(origins.into_iter().map(str::to_owned).collect()))
    }
}
