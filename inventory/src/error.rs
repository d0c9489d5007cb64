//! Inventory's errors and their one mapping to problem+json.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use shared_http::paging::LimitOutOfRange;
use shared_http::problem::{Problem, ProblemDetails};
use utoipa::ToSchema;

use crate::domain::{ParseError, ReservationStatus, Sku};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("item {sku} not found")]
    ItemNotFound { sku: String },
    #[error("reservation {id} not found")]
    ReservationNotFound { id: String },
    #[error("not enough stock for {skus:?}")]
    InsufficientStock { skus: Vec<Sku> },
    #[error("adjusting {sku} by {delta} would leave less than nothing to order ({stock} left)")]
    StockWouldGoNegative { sku: Sku, delta: i64, stock: i64 },
    #[error("unknown skus {skus:?}")]
    UnknownSku { skus: Vec<Sku> },
    #[error("reservation {id} is {status:?}")]
    ReservationExpired {
        id: String,
        status: ReservationStatus,
    },
    #[error("{0}")]
    InvalidRequest(String),
    /// The caller's deadline passed before the work was done: nothing changed.
    #[error("the request's deadline passed")]
    DeadlineExceeded,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// `item_not_found`: a problem naming the sku.
#[derive(Serialize, ToSchema)]
pub struct SkuProblem {
    #[serde(flatten)]
    pub problem: ProblemDetails,
    /// The sku asked for.
    pub sku: String,
}

/// `insufficient_stock`, `unknown_sku`: a problem listing the skus at fault.
#[derive(Serialize, ToSchema)]
pub struct SkusProblem {
    #[serde(flatten)]
    pub problem: ProblemDetails,
    #[schema(value_type = Vec<Sku>)]
    pub skus: Vec<String>,
}

/// `insufficient_stock` on a stock adjustment: the sku, and what can still be ordered.
#[derive(Serialize, ToSchema)]
pub struct StockProblem {
    #[serde(flatten)]
    pub problem: ProblemDetails,
    #[schema(value_type = Vec<Sku>)]
    pub skus: Vec<String>,
    /// What can still be ordered, which the adjustment would have overdrawn.
    #[schema(minimum = 0)]
    pub stock: i64,
}

/// `reservation_not_found`, `reservation_expired`: a problem naming the reservation.
#[derive(Serialize, ToSchema)]
pub struct ReservationProblem {
    #[serde(flatten)]
    pub problem: ProblemDetails,
    /// The reservation asked for (any text, when the id was malformed).
    pub reservation_id: String,
    /// `reservation_expired` only: what became of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reservation_status: Option<ReservationStatus>,
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
            Self::ItemNotFound { sku } => {
                Problem::new(StatusCode::NOT_FOUND, "item_not_found", "Item not found")
                    .detail(format!("There is no item with sku {sku}."))
                    .with("sku", sku)
            }
            Self::ReservationNotFound { id } => Problem::new(
                StatusCode::NOT_FOUND,
                "reservation_not_found",
                "Reservation not found",
            )
            .detail(format!("There is no reservation {id}."))
            .with("reservation_id", id),
            Self::InsufficientStock { skus } => Problem::new(
                StatusCode::CONFLICT,
                "insufficient_stock",
                "Not enough stock",
            )
            .detail(format!(
                "Not enough stock for {}; nothing was reserved.",
                Sku::join(skus)
            ))
            .with("skus", skus),
            Self::StockWouldGoNegative { sku, delta, stock } => Problem::new(
                StatusCode::CONFLICT,
                "insufficient_stock",
                "Not enough stock",
            )
            .detail(format!(
                "Adjusting {sku} by {delta} would leave less than nothing to order \
                 ({stock} can still be ordered); nothing changed."
            ))
            .with("skus", [sku])
            .with("stock", stock),
            Self::UnknownSku { skus } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_sku",
                "Unknown sku",
            )
            .detail(format!(
                "No item has sku {}; nothing was reserved.",
                Sku::join(skus)
            ))
            .with("skus", skus),
            Self::ReservationExpired { id, status } => Problem::new(
                StatusCode::CONFLICT,
                "reservation_expired",
                "Reservation no longer held",
            )
            .detail(format!(
                "Reservation {id} was {} before it could be confirmed; its stock is back on sale.",
                status.as_str()
            ))
            .with("reservation_id", id)
            .with("reservation_status", status),
            Self::InvalidRequest(detail) => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Invalid request",
            )
            .detail(detail),
            Self::DeadlineExceeded => shared_http::deadline::exceeded(),
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
