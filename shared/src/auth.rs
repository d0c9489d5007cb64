//! Service-to-service authentication with a shared bearer token.
//!
//! When `SERVICE_TOKEN` is set, routes wrapped with [`require_service_token`]
//! answer 401 unless the request carries `Authorization: Bearer <token>`.
//! When it is unset (a local first run), they are open.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;
use actix_web::web;

use crate::problem::Problem;

/// The expected token, registered as app data by services that check it.
#[derive(Clone)]
pub struct ServiceToken(Option<String>);

impl ServiceToken {
    pub fn new(token: Option<String>) -> Self {
        Self(token)
    }

    /// Whether `presented` is the token, compared in constant time so that
    /// response timing does not reveal how much of a guess was right.
    fn accepts(&self, presented: Option<&str>) -> bool {
        let Some(expected) = &self.0 else {
            return true;
        };
        let Some(presented) = presented else {
            return false;
        };
        let (a, b) = (expected.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "ServiceToken(<set>)"
        } else {
            "ServiceToken(<unset>)"
        })
    }
}

/// Middleware for the routes only other services may call.
///
/// # Errors
/// Passes on the inner service's error unchanged.
pub async fn require_service_token(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> actix_web::Result<ServiceResponse<EitherBody<impl MessageBody>>> {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let allowed = req
        .app_data::<web::Data<ServiceToken>>()
        .is_none_or(|token| token.accepts(presented));
    if !allowed {
        let problem = Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
            .detail("This endpoint needs Authorization: Bearer <SERVICE_TOKEN>.");
        return Ok(req
            .into_response(problem.to_response())
            .map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        let open = ServiceToken::new(None);
        assert!(open.accepts(None));
        let token = ServiceToken::new(Some("s3cret".into()));
        assert!(token.accepts(Some("s3cret")));
        assert!(!token.accepts(Some("s3cre")));
        assert!(!token.accepts(Some("s3cres")));
        assert!(!token.accepts(None));
    }
}
