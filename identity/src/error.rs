//! Identity's errors and their one mapping to responses: problem+json for
//! everything, except `POST /token`, whose errors are RFC 6749 §5.2 JSON.

use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use shared_http::problem::Problem;
use utoipa::ToSchema;

use crate::domain::ParseError;

/// `Retry-After` of a 503 `busy`: a hashing slot frees within tens of milliseconds.
const RETRY_BUSY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the email is taken")]
    EmailTaken,
    /// The same whether the account is missing or the password is wrong.
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("too many failed sign-ins")]
    SignInThrottled { retry_after: Duration },
    /// No password-hashing slot came free in time (see [`crate::hashing`]).
    #[error("too many passwords are being checked")]
    Busy,
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0:?}")]
    OAuth(OAuthError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<ParseError> for Error {
    fn from(e: ParseError) -> Self {
        Self::InvalidRequest(e.to_string())
    }
}

impl From<OAuthError> for Error {
    fn from(e: OAuthError) -> Self {
        Self::OAuth(e)
    }
}

/// The error codes of RFC 6749 §5.2 that the token endpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    UnsupportedGrantType,
    InvalidScope,
}

/// A token endpoint error: `{"error", "error_description"}` (RFC 6749 §5.2).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OAuthError {
    pub error: OAuthErrorCode,
    /// For people; never echoes a secret.
    pub error_description: String,
}

impl OAuthError {
    pub fn new(error: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self {
            error,
            error_description: description.into(),
        }
    }

    fn to_response(&self) -> HttpResponse {
        let mut response = if self.error == OAuthErrorCode::InvalidClient {
            let mut r = HttpResponse::Unauthorized();
            r.insert_header((header::WWW_AUTHENTICATE, r#"Basic realm="identity""#));
            r
        } else {
            HttpResponse::BadRequest()
        };
        let mut response = response
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .json(self);
        shared_http::problem::keep_error_body(&mut response);
        response
    }
}

impl Error {
    fn problem(&self) -> Problem {
        match self {
            Self::EmailTaken => Problem::new(StatusCode::CONFLICT, "email_taken", "Email taken")
                .detail("An account with this email already exists."),
            Self::InvalidCredentials => Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "Invalid credentials",
            )
            .detail("The email or the password is wrong."),
            Self::SignInThrottled { retry_after } => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many failed sign-ins",
            )
            .detail("Too many failed sign-ins for this email; try again after Retry-After seconds.")
            .retry_after(*retry_after),
            Self::Busy => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "Busy")
                .detail("Too many passwords are being checked right now; nothing was done. Retry after Retry-After seconds.")
                .retry_after(RETRY_BUSY),
            Self::InvalidRequest(detail) => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Invalid request",
            )
            .detail(detail),
            // Mapped by `error_response`, never as a problem.
            Self::OAuth(_) => Problem::internal(),
            Self::Unexpected(e) => shared_db::unavailable::problem(e),
        }
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::OAuth(e) if e.error == OAuthErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            Self::OAuth(_) => StatusCode::BAD_REQUEST,
            other => other.problem().status(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::OAuth(e) => e.to_response(),
            Self::Unexpected(e) => {
                shared_db::unavailable::log(e);
                self.problem().to_response()
            }
            other => other.problem().to_response(),
        }
    }
}
