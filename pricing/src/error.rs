//! The pricing service's errors and their one mapping to problem+json.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use shared_http::paging::LimitOutOfRange;
use shared_http::problem::{Problem, ProblemDetails};
use utoipa::ToSchema;

use crate::domain::ParseError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no price for {sku}")]
    PriceNotFound { sku: String },
    #[error("{0}")]
    InvalidRequest(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// `price_not_found`: a problem naming the sku.
#[derive(Serialize, ToSchema)]
pub struct SkuProblem {
    #[serde(flatten)]
    pub problem: ProblemDetails,
    /// The sku asked for.
    pub sku: String,
}

impl From<ParseError> for Error {
    fn from(e: ParseError) -> Self {
        Self::InvalidRequest(e.to_string())
    }
}

impl From<LimitOutOfRange> for Error {
    fn from(e: LimitOutOfRange) -> Self {
        Self::InvalidRequest(e.to_string())
    }
}

impl Error {
    fn problem(&self) -> Problem {
        match self {
            Self::PriceNotFound { sku } => {
                Problem::new(StatusCode::NOT_FOUND, "price_not_found", "Price not found")
                    .detail(format!("There is no price for sku {sku}."))
                    .with("sku", sku)
            }
            Self::InvalidRequest(detail) => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Invalid request",
            )
            .detail(detail),
            Self::Unexpected(e) => shared_db::unavailable::problem(e),
        }
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        self.problem().status()
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Unexpected(e) = self {
            shared_db::unavailable::log(e);
        }
        self.problem().to_response()
    }
}
