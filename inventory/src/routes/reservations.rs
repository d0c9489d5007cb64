//! The reservation endpoints the order service drives.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, delete, get, post, web};
use serde::{Deserialize, Serialize};
use shared_auth::Authorized;
use shared_http::deadline::RequestDeadline;
use shared_http::openapi::PROBLEM_JSON;
use shared_http::problem::ProblemDetails;
use shared_http::timestamp::{now_ms, to_rfc3339};
use utoipa::ToSchema;

use shared_vocabulary::lines::{MAX_LINES, MAX_QUANTITY};

use crate::domain::{
    NewReservation, Reservation, ReservationId, ReservationStatus, ReservedLine, Sku,
};
use crate::error::{Error, ReservationProblem, SkusProblem};
use crate::metrics::InventoryMetrics;
use crate::scopes::ReserveStock;
use crate::store::{ConfirmOutcome, ReserveOutcome, Store};

/// The reservation TTL, registered as app data.
#[derive(Debug, Clone, Copy)]
pub struct ReservationTtl(pub Duration);

/// Hold stock for every line, or for none.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reservation_id": "order-42", "lines": [{"sku": "A001", "quantity": 2}]}))]
pub struct CreateReservationRequest {
    /// Repeating an id returns that reservation and reserves nothing twice.
    #[schema(value_type = ReservationId)]
    reservation_id: String,
    /// 1 to 100 distinct skus; lines naming the same sku are added up.
    #[schema(min_items = 1)]
    lines: Vec<LineIn>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineIn {
    #[schema(value_type = Sku)]
    sku: String,
    #[schema(minimum = 1, maximum = 10_000, example = 2)]
    #[serde(deserialize_with = "shared_http::validate::whole_number")]
    quantity: u64,
}

/// Keeps the documented bounds and the domain's in step.
const _: () = assert!(MAX_QUANTITY == 10_000 && MAX_LINES == 100);

impl TryFrom<CreateReservationRequest> for NewReservation {
    type Error = Error;
    fn try_from(req: CreateReservationRequest) -> Result<Self, Error> {
        let lines: Vec<(String, u64)> =
            req.lines.into_iter().map(|l| (l.sku, l.quantity)).collect();
        Ok(NewReservation::parse(&req.reservation_id, &lines)?)
    }
}

/// A reservation and the stock it holds.
#[derive(Serialize, ToSchema)]
#[schema(as = Reservation)]
pub struct ReservationResponse {
    #[schema(value_type = ReservationId)]
    reservation_id: String,
    status: ReservationStatus,
    /// Always sent; optional in the description because the contract's example omits it.
    #[schema(format = DateTime, required = false)]
    created_at: String,
    /// When unconfirmed stock returns; null once confirmed, released or expired.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    items: Vec<ReservedLine>,
}

impl From<Reservation> for ReservationResponse {
    fn from(r: Reservation) -> Self {
        Self {
            reservation_id: r.id.as_str().to_owned(),
            status: r.status,
            created_at: to_rfc3339(r.created_at),
            expires_at: r.expires_at.map(to_rfc3339),
            items: r.lines,
        }
    }
}

/// A path id that cannot be valid cannot exist either: 404, not 400.
fn reservation_id(raw: &str) -> Result<ReservationId, Error> {
    ReservationId::parse(raw).map_err(|_| Error::ReservationNotFound { id: raw.to_owned() })
}

/// Reserves stock for every line, or for none; repeating a `reservation_id` is safe.
///
/// With `X-Request-Timeout-Ms`, nothing is reserved once that time has passed
/// (504 `deadline_exceeded`), even when the request was already being served.
#[utoipa::path(
    tag = "reservations",
    security(("service_token" = []), ("bearer_token" = [])),
    responses(
        (status = 201, description = "Reserved until `expires_at`.", body = ReservationResponse),
        (status = 200, description = "This `reservation_id` was seen before: that reservation, unchanged.",
            body = ReservationResponse),
        (status = 400, description = "`invalid_request`: a bad id, sku or quantity, or not 1 to 100 skus.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 409, description = "`insufficient_stock`: not enough stock for the listed `skus`; nothing was reserved.",
            body = SkusProblem, content_type = PROBLEM_JSON),
        (status = 422, description = "`unknown_sku`: no item has the listed `skus`; nothing was reserved.",
            body = SkusProblem, content_type = PROBLEM_JSON),
    )
)]
#[post("")]
#[tracing::instrument(skip_all)]
pub async fn create_reservation(
    auth: Authorized<ReserveStock>,
    store: web::Data<Store>,
    ttl: web::Data<ReservationTtl>,
    metrics: web::Data<InventoryMetrics>,
    deadline: RequestDeadline,
    body: web::Json<CreateReservationRequest>,
) -> Result<HttpResponse, Error> {
    let new = NewReservation::try_from(body.into_inner())?;
    let actor = auth.caller.actor();
    let outcome = store
        .reserve(&new, now_ms(), ttl.0, deadline, &actor)
        .await?;
    metrics.reservation(outcome.label());
    let (status, reservation) = match outcome {
        ReserveOutcome::Created(r) => (StatusCode::CREATED, r),
        ReserveOutcome::Existing(r) => (StatusCode::OK, r),
        ReserveOutcome::InsufficientStock(skus) => return Err(Error::InsufficientStock { skus }),
        ReserveOutcome::UnknownSkus(skus) => return Err(Error::UnknownSku { skus }),
        ReserveOutcome::TooLate => return Err(Error::DeadlineExceeded),
    };
    Ok(HttpResponse::build(status).json(ReservationResponse::from(reservation)))
}

/// A reservation and its status.
#[utoipa::path(
    tag = "reservations",
    security(("service_token" = []), ("bearer_token" = [])),
    params(("id" = String, Path, description = "The `reservation_id`.", example = "order-42")),
    responses(
        (status = 200, description = "The reservation.", body = ReservationResponse),
        (status = 404, description = "`reservation_not_found`.", body = ReservationProblem, content_type = PROBLEM_JSON),
    )
)]
#[get("/{id}")]
#[tracing::instrument(skip_all, fields(reservation_id = %path))]
pub async fn get_reservation(
    _: Authorized<ReserveStock>,
    store: web::Data<Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let id = reservation_id(&path)?;
    let reservation =
        store
            .get_reservation(&id, now_ms())
            .await?
            .ok_or_else(|| Error::ReservationNotFound {
                id: path.into_inner(),
            })?;
    Ok(HttpResponse::Ok().json(ReservationResponse::from(reservation)))
}

/// Keeps the reserved stock for good (no expiry); idempotent.
#[utoipa::path(
    tag = "reservations",
    security(("service_token" = []), ("bearer_token" = [])),
    params(("id" = String, Path, description = "The `reservation_id`.", example = "order-42")),
    responses(
        (status = 200, description = "Confirmed.", body = ReservationResponse),
        (status = 404, description = "`reservation_not_found`.", body = ReservationProblem, content_type = PROBLEM_JSON),
        (status = 409, description = "`reservation_expired`: it expired or was released first; its stock is back on sale.",
            body = ReservationProblem, content_type = PROBLEM_JSON),
    )
)]
#[post("/{id}/confirm")]
#[tracing::instrument(skip_all, fields(reservation_id = %path))]
pub async fn confirm_reservation(
    auth: Authorized<ReserveStock>,
    store: web::Data<Store>,
    metrics: web::Data<InventoryMetrics>,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let id = reservation_id(&path)?;
    let outcome = store.confirm(&id, now_ms(), &auth.caller.actor()).await?;
    if let Some(label) = outcome.label() {
        metrics.reservation(label);
    }
    match outcome {
        ConfirmOutcome::Confirmed(r) => Ok(HttpResponse::Ok().json(ReservationResponse::from(r))),
        ConfirmOutcome::TooLate(r) => Err(Error::ReservationExpired {
            id: r.id.as_str().to_owned(),
            status: r.status,
        }),
        ConfirmOutcome::NotFound => Err(Error::ReservationNotFound {
            id: path.into_inner(),
        }),
    }
}

/// Most reservations one `POST /reservation-confirmations` may name.
const MAX_CONFIRMED_AT_ONCE: usize = 100;

/// Reservations to keep for good, in one call.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reservation_ids": ["order-42", "order-43"]}))]
pub struct ConfirmAllRequest {
    /// 1 to 100 reservation ids; an id named twice is confirmed once.
    #[schema(min_items = 1, max_items = 100, value_type = Vec<ReservationId>)]
    reservation_ids: Vec<String>,
}

/// What became of each reservation asked for.
#[derive(Serialize, ToSchema)]
pub struct ConfirmAllResponse {
    /// The reservations found, in the order asked, each as it now stands:
    /// `confirmed` (now or before), or `expired` or `released` when it was
    /// too late to keep it (its stock is back on sale).
    reservations: Vec<ReservationResponse>,
    /// The ids that name no reservation.
    #[schema(value_type = Vec<ReservationId>)]
    not_found: Vec<String>,
}

/// Keeps many reservations' stock for good in one call: what
/// `POST /reservations/{id}/confirm` does for each, answered per id.
#[utoipa::path(
    tag = "reservations",
    security(("service_token" = []), ("bearer_token" = [])),
    responses(
        (status = 200, description = "Each reservation as it now stands, and the ids that name none.",
            body = ConfirmAllResponse),
        (status = 400, description = "`invalid_request`: not 1 to 100 ids, or one that cannot be a reservation id.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
    )
)]
#[post("/reservation-confirmations")]
#[tracing::instrument(skip_all)]
pub async fn confirm_reservations(
    auth: Authorized<ReserveStock>,
    store: web::Data<Store>,
    metrics: web::Data<InventoryMetrics>,
    body: web::Json<ConfirmAllRequest>,
) -> Result<HttpResponse, Error> {
    let mut asked = body.into_inner().reservation_ids;
    if !(1..=MAX_CONFIRMED_AT_ONCE).contains(&asked.len()) {
        return Err(Error::InvalidRequest(format!(
            "reservation_ids: name 1 to {MAX_CONFIRMED_AT_ONCE} reservations, not {}",
            asked.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    asked.retain(|id| seen.insert(id.clone()));
    let ids = asked
        .iter()
        .map(|raw| ReservationId::parse(raw))
        .collect::<Result<Vec<_>, _>>()?;
    let mut not_found = Vec::new();
    let mut reservations = Vec::with_capacity(ids.len());
    let actor = auth.caller.actor();
    for (id, outcome) in store.confirm_all(&ids, now_ms(), &actor).await? {
        if let Some(label) = outcome.label() {
            metrics.reservation(label);
        }
        match outcome {
            ConfirmOutcome::Confirmed(r) | ConfirmOutcome::TooLate(r) => {
                reservations.push(ReservationResponse::from(r));
            }
            ConfirmOutcome::NotFound => not_found.push(id.as_str().to_owned()),
        }
    }
    Ok(HttpResponse::Ok().json(ConfirmAllResponse {
        reservations,
        not_found,
    }))
}

/// Releases the stock (reserved or confirmed); idempotent.
#[utoipa::path(
    tag = "reservations",
    security(("service_token" = []), ("bearer_token" = [])),
    params(("id" = String, Path, description = "The `reservation_id`.", example = "order-42")),
    responses(
        (status = 204, description = "Released, or there was nothing to release."),
        (status = 404, description = "`reservation_not_found`: the id cannot be a reservation id.",
            body = ReservationProblem, content_type = PROBLEM_JSON),
    )
)]
#[delete("/{id}")]
#[tracing::instrument(skip_all, fields(reservation_id = %path))]
pub async fn release_reservation(
    auth: Authorized<ReserveStock>,
    store: web::Data<Store>,
    metrics: web::Data<InventoryMetrics>,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let id = reservation_id(&path)?;
    store.release(&id, now_ms(), &auth.caller.actor()).await?;
    metrics.reservation("released");
    Ok(HttpResponse::NoContent().finish())
}
