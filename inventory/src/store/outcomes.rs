//! What became of the store's changes, as the routes read them.

use crate::domain::{Item, Reservation, Sku};

/// What became of a reservation request.
#[derive(Debug)]
pub enum ReserveOutcome {
    Created(Reservation),
    /// The id was used before; nothing new was reserved.
    Existing(Reservation),
    InsufficientStock(Vec<Sku>),
    UnknownSkus(Vec<Sku>),
    /// The caller's deadline passed while waiting for the writer: nothing
    /// was reserved.
    TooLate,
}

impl ReserveOutcome {
    /// The `outcome` label of the reservation metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Created(_) => "reserved",
            Self::Existing(_) => "replayed",
            Self::InsufficientStock(_) => "insufficient_stock",
            Self::UnknownSkus(_) => "unknown_sku",
            Self::TooLate => "deadline_exceeded",
        }
    }
}

/// What became of a confirmation.
#[derive(Debug)]
pub enum ConfirmOutcome {
    Confirmed(Reservation),
    /// Expired or released before it could be confirmed.
    TooLate(Reservation),
    NotFound,
}

impl ConfirmOutcome {
    /// The `outcome` label of the reservation metrics; `None` for an id
    /// that names no reservation (not counted).
    pub fn label(&self) -> Option<&'static str> {
        match self {
            Self::Confirmed(_) => Some("confirmed"),
            Self::TooLate(_) => Some("too_late"),
            Self::NotFound => None,
        }
    }
}

/// What became of a `PUT /items/{sku}`.
#[derive(Debug)]
pub enum PutItemOutcome {
    Created(Item),
    /// Renamed or recategorised, or saved as it already was.
    Updated(Item),
}

/// What became of a stock adjustment.
#[derive(Debug)]
pub enum AdjustOutcome {
    Adjusted(Item),
    /// It would have left less than nothing to order; nothing changed.
    Insufficient(Item),
    NotFound,
}
