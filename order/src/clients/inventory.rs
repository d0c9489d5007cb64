//! The inventory service's reservation API, as the order flow uses it.
//!
//! Inventory's answers are turned into types here, once: a reservation's
//! status is a [`ReservationStatus`], and a refusal is an [`InventoryError`]
//! that says what happened (not enough stock, an unknown sku, a reservation
//! that expired, inventory out of reach), so that the saga matches on cases
//! instead of reading problem codes.

use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use shared_http::problem::RETRY_SOON;
use shared_http::request_id::RequestId;

use super::{Call, CallError, Downstream, problem_skus};
use crate::domain::{Lines, OrderId, Sku};

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

/// Most reservations inventory confirms in one call (its published limit).
pub const MAX_CONFIRMED_AT_ONCE: usize = 100;

#[derive(Serialize)]
struct ConfirmAllRequest<'a> {
    reservation_ids: Vec<&'a str>,
}

/// What came of asking inventory to confirm many reservations at once.
#[derive(Debug)]
pub enum BatchConfirm {
    /// Inventory's answer, each reservation's outcome in it.
    Answered(ConfirmedAll),
    /// Inventory does not serve the batch confirm (a release older than
    /// it): nothing was confirmed.
    NotServed,
}

/// Inventory's answer to confirming many reservations at once.
#[derive(Debug, Deserialize)]
pub struct ConfirmedAll {
    /// Each reservation found, as it now stands.
    reservations: Vec<Confirmed>,
    /// The ids that name no reservation.
    #[serde(default)]
    not_found: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Confirmed {
    reservation_id: String,
    status: ReservationStatus,
}

impl ConfirmedAll {
    /// What became of `id`'s reservation, as the single confirm would have
    /// said it: kept, [`InventoryError::Expired`] when it was too late, a
    /// refusal when inventory has no such reservation.
    ///
    /// # Errors
    /// As above.
    pub fn outcome(&self, id: &OrderId) -> Result<(), InventoryError> {
        let found = self
            .reservations
            .iter()
            .find(|r| r.reservation_id == id.as_str());
        match found.map(|r| r.status) {
            Some(ReservationStatus::Confirmed) => Ok(()),
            Some(_) => Err(InventoryError::Expired),
            None if self.not_found.iter().any(|missing| missing == id.as_str()) => {
                Err(InventoryError::Refused {
                    status: StatusCode::NOT_FOUND,
                    code: "reservation_not_found".to_owned(),
                })
            }
            None => Err(InventoryError::Unavailable {
                retry_after: RETRY_SOON,
                may_have_landed: true,
                cause: CallError::Decode(format!("the answer did not mention {id}")),
            }),
        }
    }
}

/// Where a reservation stands at inventory.
///
/// The same four cases as inventory's own `ReservationStatus`, on purpose not
/// shared with it: services share no domain types, each reads the other's
/// published API, so that either can change its code without the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    Reserved,
    Confirmed,
    Released,
    Expired,
}

impl ReservationStatus {
    /// Whether the stock is actually held (a reservation released before
    /// the call arrived comes back `released`, holding nothing).
    pub fn holds_stock(self) -> bool {
        matches!(self, Self::Reserved | Self::Confirmed)
    }
}

/// Inventory's view of a reservation (the fields the order flow reads).
#[derive(Debug, Deserialize)]
pub struct Reservation {
    pub status: ReservationStatus,
    #[serde(default)]
    pub items: Vec<ReservedItem>,
}

#[derive(Debug, Deserialize)]
pub struct ReservedItem {
    pub sku: Sku,
    pub name: String,
}

/// Why inventory did not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InventoryError {
    /// 409 `insufficient_stock`: nothing was held.
    #[error("not enough stock for {skus:?}")]
    InsufficientStock { skus: Vec<Sku> },
    /// 422 `unknown_sku`: nothing was held.
    #[error("unknown skus {skus:?}")]
    UnknownSku { skus: Vec<Sku> },
    /// 409 `reservation_expired`: too late to confirm; the stock went back.
    #[error("the reservation expired before it was confirmed")]
    Expired,
    /// Any other 4xx: inventory refused this service's call (a bad token, a
    /// request it does not accept). Not worth retrying.
    #[error("inventory answered {status} {code}")]
    Refused { status: StatusCode, code: String },
    /// The call's deadline passed before an answer came.
    #[error("the deadline passed before inventory answered")]
    DeadlineExceeded {
        /// Whether the call may have reached inventory (so a compensating
        /// release is worth making).
        may_have_landed: bool,
    },
    /// Too many calls to inventory in flight here: not sent.
    #[error("too many calls to inventory in flight")]
    Busy,
    /// No usable answer: down, slow, failing, or its breaker is open.
    #[error("{cause}")]
    Unavailable {
        /// When a caller may try again.
        retry_after: Duration,
        /// Whether the call may have reached inventory and changed something
        /// there (so a compensating release is worth making).
        may_have_landed: bool,
        cause: CallError,
    },
}

impl InventoryError {
    /// When the caller may try again, as far as this error tells.
    pub fn retry_after(&self) -> Duration {
        match self {
            Self::Unavailable { retry_after, .. } => *retry_after,
            _ => RETRY_SOON,
        }
    }
}

impl From<CallError> for InventoryError {
    fn from(e: CallError) -> Self {
        if let CallError::Busy(_) = e {
            return Self::Busy;
        }
        if e.is_deadline() {
            return Self::DeadlineExceeded {
                may_have_landed: e.may_have_landed(),
            };
        }
        match (e.client_error(), e.problem_code()) {
            (Some(StatusCode::CONFLICT), Some("insufficient_stock")) => Self::InsufficientStock {
                skus: problem_skus(&e),
            },
            (Some(StatusCode::UNPROCESSABLE_ENTITY), Some("unknown_sku")) => Self::UnknownSku {
                skus: problem_skus(&e),
            },
            (Some(StatusCode::CONFLICT), Some("reservation_expired")) => Self::Expired,
            (Some(status), code) => Self::Refused {
                status,
                code: code.unwrap_or("no problem code").to_owned(),
            },
            (None, _) => Self::Unavailable {
                retry_after: e.retry_after(),
                may_have_landed: e.may_have_landed(),
                cause: e,
            },
        }
    }
}

impl InventoryClient {
    pub fn new(downstream: Downstream) -> Self {
        Self(downstream)
    }

    /// Holds stock for the order. Idempotent on the order id.
    ///
    /// # Errors
    /// See [`InventoryError`].
    pub async fn reserve(
        &self,
        request_id: &RequestId,
        order_id: &OrderId,
        lines: &Lines,
        call: Call,
    ) -> Result<Reservation, InventoryError> {
        let body = ReserveRequest {
            reservation_id: order_id.as_str(),
            lines: lines
                .iter()
                .map(|(sku, quantity)| LineOut {
                    sku: sku.as_str(),
                    quantity: quantity.get(),
                })
                .collect(),
        };
        let (_, reservation) = self
            .0
            .send_for(Method::POST, "/reservations", Some(&body), request_id, call)
            .await?;
        Ok(reservation)
    }

    /// Keeps the reserved stock of every order in `ids` for good, in one
    /// call of at most [`MAX_CONFIRMED_AT_ONCE`]. Idempotent.
    ///
    /// An inventory older than `POST /reservation-confirmations` answers it
    /// 404 `not_found` (or 405): that is [`BatchConfirm::NotServed`], and
    /// [`InventoryClient::confirm`] confirms each reservation instead.
    ///
    /// # Errors
    /// See [`InventoryError`]: why the call as a whole failed. Each order's
    /// own outcome is in the answer ([`ConfirmedAll::outcome`]).
    pub async fn confirm_all(
        &self,
        request_id: &RequestId,
        ids: &[&OrderId],
        call: Call,
    ) -> Result<BatchConfirm, InventoryError> {
        let body = ConfirmAllRequest {
            reservation_ids: ids.iter().map(|id| id.as_str()).collect(),
        };
        let path = "/reservation-confirmations";
        match self
            .0
            .send_for(Method::POST, path, Some(&body), request_id, call)
            .await
        {
            Ok((_, confirmed)) => Ok(BatchConfirm::Answered(confirmed)),
            Err(e) if e.route_not_served() => Ok(BatchConfirm::NotServed),
            Err(e) => Err(e.into()),
        }
    }

    /// Keeps one order's reserved stock for good, with the per-reservation
    /// `POST /reservations/{id}/confirm` that every inventory release serves.
    /// Idempotent.
    ///
    /// # Errors
    /// See [`InventoryError`]: [`InventoryError::Expired`] when it is too
    /// late, a refusal when inventory has no such reservation.
    pub async fn confirm(
        &self,
        request_id: &RequestId,
        order_id: &OrderId,
        call: Call,
    ) -> Result<(), InventoryError> {
        let path = format!("/reservations/{order_id}/confirm");
        let empty = serde_json::json!({});
        let (_, reservation): (_, Reservation) = self
            .0
            .send_for(Method::POST, &path, Some(&empty), request_id, call)
            .await?;
        // Inventory answers 200 only for a kept reservation; anything else
        // is read as the batch's answer would be (too late).
        match reservation.status {
            ReservationStatus::Confirmed => Ok(()),
            _ => Err(InventoryError::Expired),
        }
    }

    /// Gives the stock back. Idempotent; releasing an unknown id is fine.
    ///
    /// A compensation, so it runs on a budget of its own
    /// (`COMPENSATION_TIMEOUT_MS`), not on whatever the order had left.
    ///
    /// # Errors
    /// See [`InventoryError`].
    pub async fn release(
        &self,
        request_id: &RequestId,
        order_id: &OrderId,
    ) -> Result<(), InventoryError> {
        let path = format!("/reservations/{order_id}");
        let call = Call::compensation(self.0.policy());
        self.0
            .send(Method::DELETE, &path, None::<&()>, request_id, call)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn answered(status: u16, problem: serde_json::Value) -> InventoryError {
        let status = StatusCode::from_u16(status).expect("a status");
        CallError::Status {
            status,
            problem,
            retry_after: None,
        }
        .into()
    }

    #[test]
    fn inventory_problems_become_cases() {
        let short = answered(409, json!({"code": "insufficient_stock", "skus": ["A001"]}));
        assert!(
            matches!(&short, InventoryError::InsufficientStock { skus } if skus[0].as_str() == "A001")
        );
        let unknown = answered(422, json!({"code": "unknown_sku", "skus": ["Z9"]}));
        assert!(
            matches!(&unknown, InventoryError::UnknownSku { skus } if skus[0].as_str() == "Z9")
        );
        let late = answered(409, json!({"code": "reservation_expired"}));
        assert!(matches!(late, InventoryError::Expired));
        let refused = answered(401, json!({"code": "unauthorized"}));
        assert!(
            matches!(refused, InventoryError::Refused { status, ref code } if status == 401 && code == "unauthorized")
        );
        let bare = answered(400, serde_json::Value::Null);
        assert!(matches!(bare, InventoryError::Refused { .. }));
        let down = answered(503, json!({"code": "chaos"}));
        assert!(matches!(
            down,
            InventoryError::Unavailable {
                may_have_landed: true,
                ..
            }
        ));
        let timeout: InventoryError = CallError::Timeout(Duration::from_secs(2)).into();
        assert!(matches!(timeout, InventoryError::Unavailable { .. }));
    }

    #[test]
    fn reservation_statuses_are_read_strictly() {
        let held: Reservation =
            serde_json::from_value(json!({"status": "reserved"})).expect("a reservation");
        assert!(held.status.holds_stock());
        let gone: Reservation =
            serde_json::from_value(json!({"status": "released"})).expect("a reservation");
        assert!(!gone.status.holds_stock());
        assert!(serde_json::from_value::<Reservation>(json!({"status": "lost"})).is_err());
    }

    /// A newer inventory may add fields to its answers (additive changes
    /// only): this release reads what it knows and ignores the rest.
    #[test]
    fn answers_with_fields_this_release_does_not_know_are_read() {
        let reservation: Reservation = serde_json::from_value(json!({
            "reservation_id": "o-1", "status": "reserved", "expires_at": "2027-01-01T00:00:00Z",
            "warehouse": "north",
            "items": [{"sku": "A001", "name": "Laptop", "category": "electronics",
                       "quantity": 1, "bin": "A-3"}]
        }))
        .expect("a reservation with extra fields");
        assert_eq!(reservation.items[0].sku.as_str(), "A001");

        let id = OrderId::generate();
        let confirmed: ConfirmedAll = serde_json::from_value(json!({
            "reservations": [{"reservation_id": id.as_str(), "status": "confirmed",
                              "confirmed_by": "order", "items": []}],
            "not_found": [],
            "took_ms": 3
        }))
        .expect("a batch answer with extra fields");
        assert!(confirmed.outcome(&id).is_ok());
    }
}
