//! Inventory's domain types. Wire types become these before any rule runs;
//! past that edge nothing re-checks.

use serde::{Deserialize, Serialize};
use shared_config::DataFileError;
use shared_http::validate::{UnknownValue, is_identifier};
pub use shared_vocabulary::lines::{Lines, LinesError};
pub use shared_vocabulary::sku::{InvalidSku, Sku};

const SHIPPED_CATALOG: &str = include_str!("../catalog.json");

/// Longest reservation id: room for a UUID and a prefix.
const MAX_RESERVATION_ID: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error(transparent)]
    Sku(#[from] InvalidSku),
    #[error("reservation_id {0:?} is not 1-64 letters, digits, '-', '_' or '.'")]
    ReservationId(String),
    #[error(transparent)]
    Lines(#[from] LinesError),
    #[error("name must be 1-{MAX_NAME} characters, not blank, without control characters")]
    Name,
    #[error(
        "category {0:?} is not 1-{MAX_CATEGORY} lower-case letters, digits, '-' or '_', starting with a letter"
    )]
    Category(String),
    #[error("delta must be a non-zero whole number between -{MAX_DELTA} and {MAX_DELTA}")]
    Delta,
    #[error("reason must be 1-{MAX_REASON} characters, not blank, without control characters")]
    Reason,
}

/// Longest item name, in characters.
pub const MAX_NAME: usize = 100;
/// Longest category.
pub const MAX_CATEGORY: usize = 32;
/// Largest stock change one adjustment may make, either way.
pub const MAX_DELTA: i64 = 1_000_000;
/// Longest reason given for a stock adjustment, in characters.
pub const MAX_REASON: usize = 200;

/// Text a person typed: 1..=`max` characters, not blank, no control characters.
fn is_plain_text(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

/// What an item is called (`Laptop`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemName(String);

impl ItemName {
    /// # Errors
    /// When `raw` is blank, longer than [`MAX_NAME`] characters or holds control characters.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        is_plain_text(raw, MAX_NAME)
            .then(|| Self(raw.to_owned()))
            .ok_or(ParseError::Name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A category, shaped like the shipped ones (`electronics`, `home-office`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category(String);

impl Category {
    /// # Errors
    /// When `raw` is not a lower-case identifier of at most [`MAX_CATEGORY`] bytes.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let mut bytes = raw.bytes();
        let valid = raw.len() <= MAX_CATEGORY
            && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
            && bytes
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        valid
            .then(|| Self(raw.to_owned()))
            .ok_or_else(|| ParseError::Category(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated `PUT /items/{sku}`: what the item is called and where it belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemDetails {
    pub name: ItemName,
    pub category: Category,
}

/// A validated stock change: non-zero, at most [`MAX_DELTA`] either way, with a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockAdjustment {
    delta: i64,
    reason: String,
}

impl StockAdjustment {
    /// # Errors
    /// On a zero or oversized delta, or a blank, long or control-character reason.
    pub fn parse(delta: i64, reason: &str) -> Result<Self, ParseError> {
        if delta == 0 || !(-MAX_DELTA..=MAX_DELTA).contains(&delta) {
            return Err(ParseError::Delta);
        }
        if !is_plain_text(reason, MAX_REASON) {
            return Err(ParseError::Reason);
        }
        Ok(Self {
            delta,
            reason: reason.to_owned(),
        })
    }

    pub fn delta(&self) -> i64 {
        self.delta
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// `in` for stock added, `out` for stock taken (the metric's label).
    pub fn direction(&self) -> &'static str {
        if self.delta > 0 { "in" } else { "out" }
    }
}

/// What a recorded change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// The item was created (stock 0).
    Created,
    /// Its name or category was set.
    Updated,
    /// Its stock was adjusted.
    Stock,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Stock => "stock",
        }
    }

    /// Reads the form [`ChangeKind::as_str`] writes.
    ///
    /// # Errors
    /// On any other text.
    pub fn parse(s: &str) -> Result<Self, UnknownValue> {
        let all = [Self::Created, Self::Updated, Self::Stock];
        UnknownValue::find("item change kind", all, Self::as_str, s)
    }
}

/// One recorded change to an item: who, when, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemChange {
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub actor: String,
    pub kind: ChangeKind,
    /// Stock changes: the delta, the reason and the stock after it.
    pub delta: Option<i64>,
    pub reason: Option<String>,
    pub stock_after: Option<i64>,
    /// Creations and updates: the name and category set.
    pub name: Option<String>,
    pub category: Option<String>,
}

/// The caller's id for a reservation (the order service uses its order id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationId(String);

impl ReservationId {
    /// # Errors
    /// When `raw` is not a plausible id.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        is_identifier(raw, MAX_RESERVATION_ID)
            .then(|| Self(raw.to_owned()))
            .ok_or_else(|| ParseError::ReservationId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl utoipa::PartialSchema for ReservationId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        shared_http::openapi::identifier_schema(
            MAX_RESERVATION_ID,
            "The caller's id for a reservation (the order service uses its order id).",
            "order-42",
        )
    }
}

impl utoipa::ToSchema for ReservationId {}

/// A validated request to hold stock: distinct skus, each with 1..=MAX units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReservation {
    pub id: ReservationId,
    /// Sorted by sku, so concurrent reservations lock rows in the same order.
    pub lines: Lines,
}

impl NewReservation {
    /// Lines naming the same sku twice are merged.
    ///
    /// # Errors
    /// On a bad id, sku or quantity, or a line count outside 1..=MAX_LINES.
    pub fn parse(id: &str, lines: &[(String, u64)]) -> Result<Self, ParseError> {
        Ok(Self {
            id: ReservationId::parse(id)?,
            lines: Lines::parse(lines)?,
        })
    }
}

/// An item and how many can still be ordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"sku": "A001", "name": "Laptop", "category": "electronics", "stock": 50}))]
pub struct Item {
    pub sku: Sku,
    #[schema(example = "Laptop")]
    pub name: String,
    #[schema(example = "electronics")]
    pub category: String,
    /// How many can still be ordered.
    #[schema(minimum = 0, example = 50)]
    pub stock: i64,
}

/// `reserved` (held until `expires_at`), `confirmed` (kept for good), `released` or `expired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    Reserved,
    Confirmed,
    Released,
    Expired,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Confirmed => "confirmed",
            Self::Released => "released",
            Self::Expired => "expired",
        }
    }

    /// Reads the form [`ReservationStatus::as_str`] writes.
    ///
    /// # Errors
    /// On any other text: never guessed as some other status.
    pub fn parse(s: &str) -> Result<Self, UnknownValue> {
        let all = [
            Self::Reserved,
            Self::Confirmed,
            Self::Released,
            Self::Expired,
        ];
        UnknownValue::find("reservation status", all, Self::as_str, s)
    }
}

/// One reserved line, with the item's name for the caller's convenience.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReservedLine {
    pub sku: Sku,
    pub name: String,
    pub category: String,
    #[schema(minimum = 1, maximum = 10_000)]
    pub quantity: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub id: ReservationId,
    pub status: ReservationStatus,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub lines: Vec<ReservedLine>,
}

/// The items seeded into an empty store.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub items: Vec<Item>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    items: Vec<Item>,
}

impl Catalog {
    pub fn shipped() -> Self {
        // Checked by the `shipped_catalogue_is_valid` test, so this cannot fire.
        Self::from_json(SHIPPED_CATALOG).expect("the shipped catalogue is valid")
    }

    /// # Errors
    /// On bad JSON, a bad sku, a duplicate sku, an empty name or category, or negative stock.
    pub fn from_json(text: &str) -> Result<Self, DataFileError> {
        let file: CatalogFile = serde_json::from_str(text)?;
        let mut seen = std::collections::HashSet::new();
        for item in &file.items {
            if !seen.insert(item.sku.as_str()) {
                return Err(DataFileError::Invalid(format!(
                    "{} is listed twice",
                    item.sku
                )));
            }
            if item.name.trim().is_empty() || item.category.trim().is_empty() {
                return Err(DataFileError::Invalid(format!(
                    "{}: empty name or category",
                    item.sku
                )));
            }
            if item.stock < 0 {
                return Err(DataFileError::Invalid(format!(
                    "{}: negative stock",
                    item.sku
                )));
            }
        }
        Ok(Self { items: file.items })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
        pairs.iter().map(|(s, q)| ((*s).to_owned(), *q)).collect()
    }

    #[test]
    fn shipped_catalogue_is_valid() {
        let catalog = Catalog::from_json(SHIPPED_CATALOG).expect("valid");
        assert!(catalog.items.len() >= 12);
        let categories: std::collections::HashSet<_> =
            catalog.items.iter().map(|i| i.category.as_str()).collect();
        assert!(categories.len() >= 3);
        let laptop = catalog
            .items
            .iter()
            .find(|i| i.sku.as_str() == "A001")
            .expect("A001");
        assert_eq!((laptop.name.as_str(), laptop.stock), ("Laptop", 50));
    }

    #[test]
    fn new_reservation_merges_and_sorts_lines() {
        let r = NewReservation::parse("r1", &lines(&[("B001", 1), ("A001", 2), ("B001", 3)]))
            .expect("valid");
        let got: Vec<(&str, u32)> = r.lines.iter().map(|(s, q)| (s.as_str(), q.get())).collect();
        assert_eq!(got, vec![("A001", 2), ("B001", 4)]);
    }

    #[test]
    fn new_reservation_rejects_bad_input() {
        let cases: Vec<(&str, Vec<(String, u64)>)> = vec![
            ("", lines(&[("A001", 1)])),
            ("has space", lines(&[("A001", 1)])),
            ("r1", vec![]),
            ("r1", lines(&[("A001", 0)])),
            ("r1", lines(&[("A001", 10_001)])),
            ("r1", lines(&[("bad sku", 1)])),
        ];
        for (id, l) in cases {
            assert!(NewReservation::parse(id, &l).is_err(), "{id:?} {l:?}");
        }
    }

    #[test]
    fn stored_statuses_read_back_and_unknown_ones_are_errors() {
        for status in ["reserved", "confirmed", "released", "expired"] {
            let parsed = ReservationStatus::parse(status).expect("known");
            assert_eq!(parsed.as_str(), status);
        }
        assert!(ReservationStatus::parse("lost").is_err());
    }

    #[test]
    fn item_details_accept_plain_names_and_lower_case_categories() {
        for good in ["Laptop", "Über-Maus 2000", &"x".repeat(MAX_NAME)] {
            assert!(ItemName::parse(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "   ",
            "tab\there",
            "new\nline",
            &"x".repeat(MAX_NAME + 1),
        ] {
            assert!(ItemName::parse(bad).is_err(), "{bad:?}");
        }
        for good in ["electronics", "home-office", "a1_b"] {
            assert!(Category::parse(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "Electronics",
            "1abc",
            "with space",
            "-x",
            &"a".repeat(MAX_CATEGORY + 1),
        ] {
            assert!(Category::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stock_adjustments_are_non_zero_bounded_and_explained() {
        let ok = StockAdjustment::parse(-5, "damaged").expect("valid");
        assert_eq!((ok.delta(), ok.direction()), (-5, "out"));
        assert_eq!(
            StockAdjustment::parse(MAX_DELTA, "delivery").map(|a| a.direction()),
            Ok("in")
        );
        for (delta, reason) in [
            (0, "x"),
            (MAX_DELTA + 1, "x"),
            (-MAX_DELTA - 1, "x"),
            (1, ""),
            (1, " "),
            (1, "bad\u{7}"),
        ] {
            assert!(
                StockAdjustment::parse(delta, reason).is_err(),
                "{delta} {reason:?}"
            );
        }
        assert!(StockAdjustment::parse(1, &"r".repeat(MAX_REASON + 1)).is_err());
    }

    #[test]
    fn change_kinds_read_back() {
        for kind in ["created", "updated", "stock"] {
            assert_eq!(ChangeKind::parse(kind).expect("known").as_str(), kind);
        }
        assert!(ChangeKind::parse("deleted").is_err());
    }

    #[test]
    fn invalid_catalogues_are_rejected() {
        for text in [
            "[]",
            r#"{"items":[{"sku":"A 1","name":"x","category":"y","stock":1}]}"#,
            r#"{"items":[{"sku":"A1","name":"","category":"y","stock":1}]}"#,
            r#"{"items":[{"sku":"A1","name":"x","category":"y","stock":-1}]}"#,
            r#"{"items":[{"sku":"A1","name":"x","category":"y","stock":1},{"sku":"A1","name":"x","category":"y","stock":1}]}"#,
        ] {
            assert!(Catalog::from_json(text).is_err(), "{text}");
        }
    }
}
