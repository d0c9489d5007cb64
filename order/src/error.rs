//! Order's errors and their one mapping to problem+json.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use shared_auth::AuthError;
use shared_http::problem::{Problem, ProblemDetails, RETRY_SOON};
use utoipa::ToSchema;

use crate::domain::{OrderStatus, ParseError, Sku};
use crate::history::QueryError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidRequest(String),
    /// A request part that did not parse into its domain type.
    #[error(transparent)]
    Unparsable(#[from] ParseError),
    #[error("order {id} not found")]
    OrderNotFound { id: String },
    #[error("not enough stock for {skus:?}")]
    InsufficientStock { skus: Vec<Sku> },
    #[error("unknown skus {skus:?}")]
    UnknownSku { skus: Vec<Sku> },
    #[error("inventory unavailable: {reason}")]
    InventoryUnavailable {
        reason: String,
        retry_after: Duration,
    },
    #[error("inventory refused the call: {reason}")]
    InventoryRefused { reason: String },
    /// A dependency's bulkhead is full: the call was not made.
    #[error("too many calls to {dependency} in flight")]
    DependencyBusy { dependency: &'static str },
    /// As many orders as `ORDERS_MAX_IN_FLIGHT` are being placed.
    #[error("too many orders in progress")]
    TooManyOrders,
    /// The order's deadline ran out at `stage`; nothing is held.
    #[error("the deadline passed ({stage})")]
    DeadlineExceeded { stage: &'static str },
    /// `order_id` names the first order only when it is the same customer's.
    #[error("idempotency key reused for a different order")]
    IdempotencyKeyReused { order_id: Option<String> },
    #[error("order {order_id} is still being placed")]
    OrderInProgress { order_id: String },
    #[error("order {id} is {status:?}")]
    NotCancellable { id: String, status: OrderStatus },
    /// No token where one is needed (401), or a bad one.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The body names a customer other than the token's subject.
    #[error("the order is for {customer_id}, not the token's subject")]
    CustomerMismatch { customer_id: String },
    /// The live feed has as many listeners as it takes.
    #[error("the live feed is full")]
    FeedFull,
    /// The caller holds as many live-feed streams as one caller may.
    #[error("the caller holds as many streams as it may")]
    TooManyStreams,
    /// The events broker did not answer.
    #[error("the events broker is unavailable: {0:#}")]
    EventsUnavailable(anyhow::Error),
    #[error("dead letter {0} not found")]
    DeadLetterNotFound(String),
    /// A replayed dead letter failed again (the cause is logged, not shown).
    #[error("the replayed event failed again: {0}")]
    ReplayFailed(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// How long a listener refused by a full feed is asked to wait.
const FEED_RETRY: Duration = Duration::from_secs(30);
/// A caller over its streams usually has one it no longer reads (a closed
/// tab): the feed finds it gone when a write to it fails, the second one
/// after the close, so within two keep-alives (15 s each; measured: 30 s).
const STREAMS_RETRY: Duration = Duration::from_secs(30);

/// `insufficient_stock`, `unknown_sku`: a problem listing the skus at fault.
/// (`order_in_progress` and `idempotency_key_reused` name the `order_id` instead.)
#[derive(Serialize, ToSchema)]
pub struct SkusProblem {
    #[serde(flatten)]
    pub problem: ProblemDetails,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<Sku>, nullable = false)]
    pub skus: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub order_id: Option<String>,
}

/// `order_not_found`, `order_not_cancellable`: a problem naming the order.
#[derive(Serialize, ToSchema)]
pub struct OrderProblem {
    #[serde(flatten)]
    pub problem: ProblemDetails,
    pub order_id: String,
    /// `order_not_cancellable` only: where the order stands.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub order_status: Option<OrderStatus>,
}

/// 400 `invalid_request`, saying what is wrong.
fn invalid_request(detail: &str) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "Invalid request",
    )
    .detail(detail)
}

impl From<QueryError> for Error {
    fn from(e: QueryError) -> Self {
        Self::InvalidRequest(e.to_string())
    }
}

impl Error {
    fn problem(&self) -> Problem {
        match self {
            Self::InvalidRequest(detail) => invalid_request(detail),
            Self::Unparsable(e) => invalid_request(&e.to_string()),
            Self::OrderNotFound { id } => {
                Problem::new(StatusCode::NOT_FOUND, "order_not_found", "Order not found")
                    .detail(format!("There is no order {id}."))
                    .with("order_id", id)
            }
            Self::InsufficientStock { skus } => {
                Problem::new(StatusCode::CONFLICT, "insufficient_stock", "Not enough stock")
                    .detail(format!("Not enough stock for {}; the order was not placed.", Sku::join(skus)))
                    .with("skus", skus)
            }
            Self::UnknownSku { skus } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_sku", "Unknown sku")
                    .detail(format!("No item has sku {}; the order was not placed.", Sku::join(skus)))
                    .with("skus", skus)
            }
            Self::InventoryUnavailable { retry_after, .. } => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "inventory_unavailable",
                "Inventory unavailable",
            )
            .detail("Stock cannot be reserved right now, so the order was not placed; nothing was charged or held. Retry shortly.")
            .retry_after(*retry_after),
            Self::InventoryRefused { .. } => Problem::new(
                StatusCode::BAD_GATEWAY,
                "inventory_refused",
                "Inventory refused the request",
            )
            .detail("The inventory service refused this service's call; the order was not placed."),
            Self::DependencyBusy { dependency } => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "dependency_busy",
                "Dependency busy",
            )
            .detail(format!("Too many calls to {dependency} are in flight, so the order was not placed; nothing is held. Retry shortly."))
            .retry_after(RETRY_SOON),
            Self::TooManyOrders => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_orders",
                "Too many orders in progress",
            )
            .detail("This instance is placing as many orders as it takes at once; the order was not started. Retry shortly.")
            .retry_after(RETRY_SOON),
            Self::DeadlineExceeded { .. } => shared_http::deadline::exceeded()
                .detail("The order's deadline (ORDER_DEADLINE_MS, or a shorter X-Request-Timeout-Ms) passed before it could be placed; it failed and no stock is held."),
            Self::IdempotencyKeyReused { order_id } => idempotency_key_reused(order_id.as_deref()),
            Self::OrderInProgress { order_id } => Problem::new(
                StatusCode::CONFLICT,
                "order_in_progress",
                "Order still being placed",
            )
            .detail("The first request with this Idempotency-Key is still being processed; retry shortly to get its result.")
            .with("order_id", order_id)
            .retry_after(RETRY_SOON),
            Self::NotCancellable { id, status } => Problem::new(
                StatusCode::CONFLICT,
                "order_not_cancellable",
                "Order cannot be cancelled",
            )
            .detail(format!("Order {id} is {} and holds no stock to release.", status.as_str()))
            .with("order_id", id)
            .with("order_status", status),
            Self::Auth(refused) => refused.to_problem(),
            Self::CustomerMismatch { .. } => Problem::new(
                StatusCode::FORBIDDEN,
                "customer_mismatch",
                "Customer mismatch",
            )
            .detail("Orders are placed for the customer the access token was issued to; leave customer_id out or send that one."),
            Self::FeedFull => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_listeners",
                "Too many listeners",
            )
            .detail("The live feed has as many listeners as it takes; retry later.")
            .retry_after(FEED_RETRY),
            Self::TooManyStreams => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                "Too many streams",
            )
            .detail("You hold as many live-feed streams as one caller may (EVENTS_STREAMS_PER_CALLER); close one first.")
            .retry_after(STREAMS_RETRY),
            Self::EventsUnavailable(_) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "events_unavailable",
                "Events broker unavailable",
            )
            .detail("The events broker cannot be reached right now; retry shortly.")
            .retry_after(RETRY_SOON),
            Self::DeadLetterNotFound(sequence) => Problem::new(
                StatusCode::NOT_FOUND,
                "dead_letter_not_found",
                "Dead letter not found",
            )
            .detail(format!("No dead letter of this service's consumers has sequence {sequence}.")),
            Self::ReplayFailed(_) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "replay_failed",
                "Replay failed",
            )
            .detail("The consumer failed on this event again; it stays a dead letter. The cause is in the service's log."),
            Self::Unexpected(e) => shared_db::unavailable::problem(e),
        }
    }
}

/// The first order's id is named only to the customer who placed it.
fn idempotency_key_reused(order_id: Option<&str>) -> Problem {
    let problem = Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "Idempotency key reused",
    )
    .detail(
        "This Idempotency-Key was first used for a different order; use a new key for a new order.",
    );
    match order_id {
        Some(order_id) => problem.with("order_id", order_id),
        None => problem,
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        self.problem().status()
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Unexpected(e) => shared_db::unavailable::log(e),
            Self::InventoryUnavailable { reason, .. } | Self::InventoryRefused { reason } => {
                tracing::warn!(reason, "order not placed: inventory")
            }
            Self::DeadlineExceeded { stage } => {
                tracing::warn!(stage, "order not placed: its deadline passed")
            }
            Self::EventsUnavailable(e) => {
                tracing::warn!(error.cause_chain = %format_args!("{e:#}"), "events broker unavailable")
            }
            Self::ReplayFailed(cause) => {
                tracing::warn!(cause, "a replayed dead letter failed again")
            }
            _ => {}
        }
        self.problem().to_response()
    }
}
