//! The reservation endpoints the order service drives.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use shared::timestamp::{now_ms, to_rfc3339};

use crate::domain::{NewReservation, Reservation, ReservationId, ReservationStatus, ReservedLine};
use crate::error::Error;
use crate::store::{ConfirmOutcome, ReserveOutcome, Store};

/// The reservation TTL, registered as app data.
#[derive(Debug, Clone, Copy)]
pub struct ReservationTtl(pub Duration);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateReservationRequest {
    reservation_id: String,
    lines: Vec<LineIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineIn {
    sku: String,
    quantity: u64,
}

impl TryFrom<CreateReservationRequest> for NewReservation {
    type Error = Error;
    fn try_from(req: CreateReservationRequest) -> Result<Self, Error> {
        let lines: Vec<(String, u64)> =
            req.lines.into_iter().map(|l| (l.sku, l.quantity)).collect();
        Ok(NewReservation::parse(&req.reservation_id, &lines)?)
    }
}

#[derive(Serialize)]
pub struct ReservationResponse {
    reservation_id: String,
    status: ReservationStatus,
    created_at: String,
    /// When unconfirmed stock returns; null once confirmed, released or expired.
    expires_at: Option<String>,
    items: Vec<ReservedLine>,
}

impl From<Reservation> for ReservationResponse {
    fn from(r: Reservation) -> Self {
        Self {
            reservation_id: r.id,
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

#[tracing::instrument(skip_all)]
pub async fn create_reservation(
    store: web::Data<Store>,
    ttl: web::Data<ReservationTtl>,
    body: web::Json<CreateReservationRequest>,
) -> Result<HttpResponse, Error> {
    let new = NewReservation::try_from(body.into_inner())?;
    let (status, reservation) = match store.reserve(&new, now_ms(), ttl.0).await? {
        ReserveOutcome::Created(r) => (StatusCode::CREATED, r),
        ReserveOutcome::Existing(r) => (StatusCode::OK, r),
        ReserveOutcome::InsufficientStock(skus) => return Err(Error::InsufficientStock { skus }),
        ReserveOutcome::UnknownSkus(skus) => return Err(Error::UnknownSku { skus }),
    };
    Ok(HttpResponse::build(status).json(ReservationResponse::from(reservation)))
}

#[tracing::instrument(skip_all, fields(reservation_id = %path))]
pub async fn get_reservation(
    store: web::Data<Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let id = reservation_id(&path)?;
    let reservation = store
        .get_reservation(id.as_str(), now_ms())
        .await?
        .ok_or_else(|| Error::ReservationNotFound {
            id: path.into_inner(),
        })?;
    Ok(HttpResponse::Ok().json(ReservationResponse::from(reservation)))
}

#[tracing::instrument(skip_all, fields(reservation_id = %path))]
pub async fn confirm_reservation(
    store: web::Data<Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let id = reservation_id(&path)?;
    match store.confirm(id.as_str(), now_ms()).await? {
        ConfirmOutcome::Confirmed(r) => Ok(HttpResponse::Ok().json(ReservationResponse::from(r))),
        ConfirmOutcome::TooLate(r) => Err(Error::ReservationExpired {
            id: r.id,
            status: r.status,
        }),
        ConfirmOutcome::NotFound => Err(Error::ReservationNotFound {
            id: path.into_inner(),
        }),
    }
}

#[tracing::instrument(skip_all, fields(reservation_id = %path))]
pub async fn release_reservation(
    store: web::Data<Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let id = reservation_id(&path)?;
    store.release(id.as_str(), now_ms()).await?;
    Ok(HttpResponse::NoContent().finish())
}
