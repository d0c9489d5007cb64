//! Order's domain types and the rule that prices an order's lines.

use std::collections::HashMap;

use serde::Serialize;
use shared_http::validate::UnknownValue;
pub use shared_vocabulary::lines::{Lines, LinesError, Quantity};
use shared_vocabulary::money::Money;
pub use shared_vocabulary::sku::{InvalidSku, Sku};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("customer_id must be 1-64 characters with no control characters")]
    CustomerId,
    #[error(transparent)]
    Lines(#[from] LinesError),
    #[error("Idempotency-Key must be 1-128 visible ASCII characters")]
    IdempotencyKey,
}

/// An order's id: a UUIDv7, so that ids sort by creation time. Kept both as
/// the UUID (for cursors) and in its stored text form (lower-case, hyphenated).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderId {
    uuid: uuid::Uuid,
    text: String,
}

impl OrderId {
    /// A new id, for an order being placed now.
    pub fn generate() -> Self {
        Self::from_uuid(uuid::Uuid::now_v7())
    }

    /// An id as sent or stored; `None` when it cannot be an order's.
    pub fn parse(raw: &str) -> Option<Self> {
        uuid::Uuid::try_parse(raw).ok().map(Self::from_uuid)
    }

    pub fn from_uuid(uuid: uuid::Uuid) -> Self {
        Self {
            uuid,
            text: uuid.hyphenated().to_string(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn as_uuid(&self) -> uuid::Uuid {
        self.uuid
    }
}

impl std::fmt::Display for OrderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Who the order is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerId(String);

impl CustomerId {
    /// # Errors
    /// When empty, longer than 64 characters, or holding control characters.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let raw = raw.trim();
        let ok = (1..=64).contains(&raw.chars().count()) && !raw.chars().any(char::is_control);
        ok.then(|| Self(raw.to_owned()))
            .ok_or(ParseError::CustomerId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The pattern says what [`CustomerId::parse`] does: no control characters,
/// not all blank. (Its length counts before trimming, so it is a little stricter.)
impl utoipa::PartialSchema for CustomerId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(64))
            .pattern(Some(
                r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
            ))
            .description(Some("Who the order is for."))
            .examples([serde_json::json!("c1")])
            .into()
    }
}

impl utoipa::ToSchema for CustomerId {}

/// The client's key for retrying one order safely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// # Errors
    /// When empty, over 128 characters, or not visible ASCII.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let ok = (1..=128).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(raw.to_owned()))
            .ok_or(ParseError::IdempotencyKey)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated order request: distinct skus (sorted), each with a quantity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub customer_id: CustomerId,
    pub lines: Lines,
}

impl NewOrder {
    /// Lines naming the same sku twice are merged.
    ///
    /// # Errors
    /// On a bad customer id, sku or quantity, or a line count outside 1..=MAX_LINES.
    pub fn parse(customer_id: &str, lines: &[(String, u64)]) -> Result<Self, ParseError> {
        Ok(Self {
            customer_id: CustomerId::parse(customer_id)?,
            lines: Lines::parse(lines)?,
        })
    }

    /// The request in canonical form: two requests for the same order have
    /// the same fingerprint, whatever their line order or shape.
    pub fn fingerprint(&self) -> String {
        let lines: Vec<String> = self
            .lines
            .iter()
            .map(|(sku, q)| format!("{}x{}", sku.as_str(), q.get()))
            .collect();
        format!("{}|{}", self.customer_id.as_str(), lines.join(","))
    }
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Recorded; the saga is under way.
    Pending,
    /// Stock confirmed and every line priced.
    Confirmed,
    /// Stock confirmed, but some line has no price yet (pricing was down and
    /// the sku had never been priced).
    PendingPricing,
    /// Inventory refused it (stock or sku); nothing is held.
    Rejected,
    /// A dependency failed mid-way; nothing is held.
    Failed,
    /// Cancelled by the customer; its stock was released.
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::PendingPricing => "pending_pricing",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Every status, in the order an order goes through them (and the API
    /// documents them): what [`OrderStatus::parse`] and the listing's status
    /// filter accept. A new status goes here as well as in the enum.
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Confirmed,
        Self::PendingPricing,
        Self::Rejected,
        Self::Failed,
        Self::Cancelled,
    ];

    /// Reads the form [`OrderStatus::as_str`] writes.
    ///
    /// # Errors
    /// On any other text: never guessed as some other status.
    pub fn parse(s: &str) -> Result<Self, UnknownValue> {
        UnknownValue::find("order status", Self::ALL, Self::as_str, s)
    }

    /// Whether the order holds confirmed stock (and so can be cancelled).
    pub fn holds_stock(self) -> bool {
        matches!(self, Self::Confirmed | Self::PendingPricing)
    }
}

/// Where an order's prices came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PricingSource {
    /// Quoted by the pricing service for this order.
    Live,
    /// Pricing could not be reached: the last price seen for each sku.
    Fallback,
}

impl PricingSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Fallback => "fallback",
        }
    }

    /// Reads the form [`PricingSource::as_str`] writes.
    ///
    /// # Errors
    /// On any other text.
    pub fn parse(s: &str) -> Result<Self, UnknownValue> {
        UnknownValue::find(
            "pricing source",
            [Self::Live, Self::Fallback],
            Self::as_str,
            s,
        )
    }
}

/// A unit price for one sku, live or last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitPrice {
    pub unit: Money,
    pub discount_percent: u8,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub sku: Sku,
    pub name: Option<String>,
    pub quantity: u32,
    pub unit_price: Option<Money>,
    pub discount_percent: Option<u8>,
    pub line_total: Option<Money>,
}

/// An order's lines with prices applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLines {
    pub lines: Vec<OrderLine>,
    /// `None` unless every line is priced.
    pub total: Option<Money>,
    pub currency: Option<String>,
}

impl PricedLines {
    pub fn is_complete(&self) -> bool {
        self.total.is_some()
    }
}

/// Prices each line from `prices`; a sku without a price stays unpriced
/// (never a made-up price), and then the order has no total.
pub fn price_lines(
    lines: &Lines,
    names: &HashMap<Sku, String>,
    prices: &HashMap<Sku, UnitPrice>,
) -> PricedLines {
    let mut total = Some(Money::ZERO);
    let mut currency = None;
    let lines = lines
        .iter()
        .map(|(sku, quantity)| {
            let price = prices.get(sku);
            let line_total = price.and_then(|p| p.unit.checked_mul(quantity.get()));
            total = match (total, line_total) {
                (Some(t), Some(l)) => t.checked_add(l),
                _ => None,
            };
            if currency.is_none() {
                currency = price.map(|p| p.currency.clone());
            }
            OrderLine {
                sku: sku.clone(),
                name: names.get(sku).cloned(),
                quantity: quantity.get(),
                unit_price: price.map(|p| p.unit),
                discount_percent: price.map(|p| p.discount_percent),
                line_total,
            }
        })
        .collect();
    PricedLines {
        lines,
        total,
        currency,
    }
}

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub customer_id: CustomerId,
    pub status: OrderStatus,
    pub pricing: Option<PricingSource>,
    pub currency: Option<String>,
    pub total: Option<Money>,
    pub lines: Vec<OrderLine>,
    pub fingerprint: String,
    pub failure_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
        pairs.iter().map(|(s, q)| ((*s).to_owned(), *q)).collect()
    }

    fn sku(s: &str) -> Sku {
        Sku::parse(s).expect("valid sku")
    }

    fn usd(cents: i64, discount_percent: u8) -> UnitPrice {
        UnitPrice {
            unit: Money::from_cents(cents),
            discount_percent,
            currency: "USD".into(),
        }
    }

    #[test]
    fn new_order_merges_lines_and_fingerprints_canonically() {
        let a =
            NewOrder::parse("c1", &raw(&[("B001", 1), ("A001", 2), ("B001", 1)])).expect("valid");
        let b = NewOrder::parse("c1", &raw(&[("A001", 2), ("B001", 2)])).expect("valid");
        assert_eq!(a, b);
        assert_eq!(a.fingerprint(), "c1|A001x2,B001x2");
    }

    #[test]
    fn new_order_rejects_bad_input() {
        let long = "x".repeat(65);
        let cases: Vec<(&str, Vec<(String, u64)>)> = vec![
            ("", raw(&[("A001", 1)])),
            ("   ", raw(&[("A001", 1)])),
            ("bad\u{7}id", raw(&[("A001", 1)])),
            (&long, raw(&[("A001", 1)])),
            ("c1", vec![]),
            ("c1", raw(&[("A001", 0)])),
            ("c1", raw(&[("A001", 10_001)])),
            ("c1", raw(&[("not a sku", 1)])),
        ];
        for (customer, lines) in cases {
            assert!(
                NewOrder::parse(customer, &lines).is_err(),
                "{customer:?} {lines:?}"
            );
        }
    }

    #[test]
    fn stored_statuses_read_back_and_unknown_ones_are_errors() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Ok(status));
        }
        assert!(OrderStatus::parse("shipped").is_err());
        assert_eq!(PricingSource::parse("live"), Ok(PricingSource::Live));
        assert!(PricingSource::parse("guessed").is_err());
    }

    #[test]
    fn order_ids_are_uuids() {
        let id = OrderId::generate();
        assert_eq!(OrderId::parse(id.as_str()), Some(id.clone()));
        let upper = OrderId::parse(&id.as_str().to_uppercase()).expect("upper case reads");
        assert_eq!(upper.as_str(), id.as_str(), "read back in the stored form");
        for bad in ["", "42", "not-a-uuid", "../etc"] {
            assert_eq!(OrderId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn idempotency_keys() {
        assert!(IdempotencyKey::parse("3f2c-key_1").is_ok());
        for bad in ["", "has space", &"k".repeat(129)] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fully_priced_lines_have_a_total() {
        let order = NewOrder::parse("c1", &raw(&[("A001", 2), ("B001", 1)])).expect("valid");
        let prices = HashMap::from([
            (sku("A001"), usd(89_999, 10)),
            (sku("B001"), usd(19_900, 0)),
        ]);
        let names = HashMap::from([(sku("A001"), "Laptop".into())]);
        let priced = price_lines(&order.lines, &names, &prices);
        assert_eq!(priced.total, Some(Money::from_cents(199_898)));
        assert_eq!(priced.currency.as_deref(), Some("USD"));
        assert_eq!(priced.lines[0].name.as_deref(), Some("Laptop"));
        assert_eq!(priced.lines[0].line_total, Some(Money::from_cents(179_998)));
        assert_eq!(priced.lines[1].discount_percent, Some(0));
        assert!(priced.is_complete());
    }

    #[test]
    fn an_unpriced_line_leaves_the_order_without_a_total() {
        let order = NewOrder::parse("c1", &raw(&[("A001", 1), ("Z999", 1)])).expect("valid");
        let prices = HashMap::from([(sku("A001"), usd(89_999, 10))]);
        let priced = price_lines(&order.lines, &HashMap::new(), &prices);
        assert_eq!(priced.total, None);
        assert!(!priced.is_complete());
        assert_eq!(priced.lines[1].unit_price, None);
        assert_eq!(priced.lines[1].line_total, None);
        assert_eq!(priced.lines[0].unit_price, Some(Money::from_cents(89_999)));
    }
}
