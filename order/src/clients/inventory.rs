//! The inventory service's reservation API, as the order flow uses it.

use actix_web::http::Method;
use serde::{Deserialize, Serialize};
use shared::request_id::RequestId;

use super::{CallError, Downstream};
use crate::domain::Sku;

#[derive(Clone)]
pub struct InventoryClient(Downstream);

#[derive(Serialize)]
struct ReserveRequest<'a> {
    reservation_id: &'a str,
    lines: Vec<LineOut<'a>>,
}

#[derive(Serialize)]
struct LineOut<'a> {
    sku: &'a str,
    quantity: u32,
}

/// Inventory's view of a reservation (the fields the order flow reads).
#[derive(Debug, Deserialize)]
pub struct ReservationOut {
    pub status: String,
    #[serde(default)]
    pub items: Vec<ReservedItemOut>,
}

#[derive(Debug, Deserialize)]
pub struct ReservedItemOut {
    pub sku: String,
    pub name: String,
}

impl ReservationOut {
    /// Whether the stock is actually held (a reservation released before it
    /// arrived comes back `released`, holding nothing).
    pub fn holds_stock(&self) -> bool {
        self.status == "reserved" || self.status == "confirmed"
    }
}

impl InventoryClient {
    pub fn new(downstream: Downstream) -> Self {
        Self(downstream)
    }

    pub fn downstream(&self) -> &Downstream {
        &self.0
    }

    /// Holds stock for the order. Idempotent on `reservation_id`.
    ///
    /// # Errors
    /// See [`CallError`]; 409 and 422 come back as `CallError::Status`.
    pub async fn reserve(
        &self,
        request_id: &RequestId,
        reservation_id: &str,
        lines: &[(Sku, u32)],
    ) -> Result<ReservationOut, CallError> {
        let body = ReserveRequest {
            reservation_id,
            lines: lines
                .iter()
                .map(|(sku, quantity)| LineOut {
                    sku: sku.as_str(),
                    quantity: *quantity,
                })
                .collect(),
        };
        let (_, reservation) = self
            .0
            .send_for(Method::POST, "/reservations", Some(&body), request_id)
            .await?;
        Ok(reservation)
    }

    /// Keeps the reserved stock for good.
    ///
    /// # Errors
    /// See [`CallError`].
    pub async fn confirm(
        &self,
        request_id: &RequestId,
        reservation_id: &str,
    ) -> Result<ReservationOut, CallError> {
        let path = format!("/reservations/{reservation_id}/confirm");
        let (_, reservation) = self
            .0
            .send_for(
                Method::POST,
                &path,
                Some(&serde_json::json!({})),
                request_id,
            )
            .await?;
        Ok(reservation)
    }

    /// Gives the stock back. Idempotent; releasing an unknown id is fine.
    ///
    /// # Errors
    /// See [`CallError`].
    pub async fn release(
        &self,
        request_id: &RequestId,
        reservation_id: &str,
    ) -> Result<(), CallError> {
        let path = format!("/reservations/{reservation_id}");
        self.0
            .send(Method::DELETE, &path, None::<&()>, request_id)
            .await
            .map(|_| ())
    }
}
