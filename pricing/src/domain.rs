//! Prices and the rules that turn a base price into what a customer pays.
//!
//! The discount that applies to a quantity is the best of the item's own
//! discount and the quantity tier it reaches ("best price wins"; discounts do
//! not stack). Unit prices are rounded half up to the cent; a line total is
//! the rounded unit price times the quantity, so lines always add up.

use shared_config::DataFileError;
use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use shared_vocabulary::money::Money;
pub use shared_vocabulary::sku::{InvalidSku, Sku};

/// The catalogue shipped with the service.
const SHIPPED_CATALOG: &str = include_str!("../catalog.json");

/// Largest quantity one quote accepts.
pub const MAX_QUANTITY: u32 = 100_000;

/// Highest base price one `PUT /price/{sku}` may set: 1,000,000.00.
pub const MAX_BASE_CENTS: i64 = 100_000_000;

/// [`MAX_BASE_CENTS`] as the decimal the API takes.
const MAX_BASE: f64 = 1_000_000.0;

/// Most quantity tiers one price may have.
pub const MAX_TIERS: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error(transparent)]
    Sku(#[from] InvalidSku),
    #[error("quantity {0} is not between 1 and {MAX_QUANTITY}")]
    Quantity(u64),
    #[error("base_price must be above 0 and at most 1000000.00, with at most 2 decimals")]
    BasePrice,
    #[error("discount_percent {0} is not between 0 and 100")]
    Discount(u64),
    #[error(
        "tiers must be at most {MAX_TIERS}, with min_quantity from 2 to {MAX_QUANTITY}, \
         strictly increasing, and discount_percent from 0 to 100"
    )]
    Tiers,
}

fn percent(n: u64) -> Result<u8, ParseError> {
    u8::try_from(n)
        .ok()
        .filter(|p| *p <= 100)
        .ok_or(ParseError::Discount(n))
}

/// How many units are being priced (1 to [`MAX_QUANTITY`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(u32);

impl Quantity {
    /// # Errors
    /// When `n` is 0 or above [`MAX_QUANTITY`].
    pub fn parse(n: u64) -> Result<Self, ParseError> {
        match u32::try_from(n) {
            Ok(q) if (1..=MAX_QUANTITY).contains(&q) => Ok(Self(q)),
            _ => Err(ParseError::Quantity(n)),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// From `min_quantity` units on, `discount_percent` off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub min_quantity: u32,
    pub discount_percent: u8,
}

/// One sku's price as kept: base price, own discount, own tiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceEntry {
    pub base: Money,
    pub discount_percent: u8,
    /// Item-specific tiers; `None` means the catalogue's.
    pub tiers: Option<Vec<Tier>>,
}

impl PriceEntry {
    /// A price set through the API: 0 < `base_price` <= 1,000,000.00 with at
    /// most 2 decimals, a discount of 0..=100 %, and at most [`MAX_TIERS`]
    /// tiers with strictly increasing `min_quantity` >= 2 (`None`: the
    /// catalogue's tiers).
    ///
    /// # Errors
    /// When any of those does not hold.
    pub fn parse(
        base_price: f64,
        discount_percent: u64,
        tiers: Option<&[(u64, u64)]>,
    ) -> Result<Self, ParseError> {
        // The bound is checked on the number as sent too: 1000000.0000000001
        // is within rounding noise of the maximum's cents, but above it.
        let within = base_price > 0.0 && base_price <= MAX_BASE;
        let base = Money::from_decimal(base_price)
            .filter(|m| within && (1..=MAX_BASE_CENTS).contains(&m.cents()))
            .ok_or(ParseError::BasePrice)?;
        let discount_percent = percent(discount_percent)?;
        let tiers = tiers.map(parse_tiers).transpose()?;
        Ok(Self {
            base,
            discount_percent,
            tiers,
        })
    }
}

fn parse_tiers(raw: &[(u64, u64)]) -> Result<Vec<Tier>, ParseError> {
    if raw.len() > MAX_TIERS {
        return Err(ParseError::Tiers);
    }
    let mut tiers: Vec<Tier> = Vec::with_capacity(raw.len());
    for &(min_quantity, discount) in raw {
        let min_quantity = u32::try_from(min_quantity)
            .ok()
            .filter(|q| (2..=MAX_QUANTITY).contains(q))
            .ok_or(ParseError::Tiers)?;
        if tiers.last().is_some_and(|t| t.min_quantity >= min_quantity) {
            return Err(ParseError::Tiers);
        }
        let discount_percent = percent(discount).map_err(|_| ParseError::Tiers)?;
        tiers.push(Tier {
            min_quantity,
            discount_percent,
        });
    }
    Ok(tiers)
}

/// What applies to every price: the currency and the catalogue's quantity
/// tiers (those of skus without their own). From the catalogue file.
#[derive(Debug, Clone)]
pub struct PriceRules {
    currency: Arc<str>,
    tiers: Arc<Vec<Tier>>,
}

impl PriceRules {
    pub fn currency(&self) -> &str {
        &self.currency
    }

    /// The price of `entry` (the price of `sku`), for one unit or for `quantity` units.
    pub fn quote(&self, sku: &Sku, entry: &PriceEntry, quantity: Option<Quantity>) -> Quote {
        let units = quantity.map_or(1, Quantity::get);
        let tiers = entry.tiers.as_deref().unwrap_or(&self.tiers);
        let tier_discount = tiers
            .iter()
            .filter(|t| units >= t.min_quantity)
            .map(|t| t.discount_percent)
            .max()
            .unwrap_or(0);
        let discount_percent = entry.discount_percent.max(tier_discount);
        let final_price = entry.base.percent_off(discount_percent);
        Quote {
            sku: sku.as_str().to_owned(),
            base_price: entry.base,
            discount_percent,
            final_price,
            currency: self.currency.to_string(),
            discounted: discount_percent > 0,
            quantity: quantity.map(Quantity::get),
            // At most 1e13 cents times 1e5 units: far inside i64.
            line_total: quantity.and_then(|q| final_price.checked_mul(q.get())),
        }
    }
}

/// A catalogue file: the rules and the prices it seeds an empty store with.
#[derive(Debug, Clone)]
pub struct PriceBook {
    rules: PriceRules,
    entries: Arc<HashMap<String, PriceEntry>>,
    /// Skus in catalogue order, for listings.
    order: Arc<Vec<String>>,
}

/// A price as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(
    as = Price,
    example = json!({"sku": "A001", "base_price": 999.99, "discount_percent": 10,
                     "final_price": 899.99, "currency": "USD", "discounted": true})
)]
pub struct Quote {
    #[schema(value_type = Sku)]
    pub sku: String,
    /// Unit price before any discount.
    pub base_price: Money,
    /// The discount applied (item discount or quantity tier, whichever is larger).
    #[schema(maximum = 100)]
    pub discount_percent: u8,
    /// Unit price after the discount.
    pub final_price: Money,
    /// ISO 4217 code of every amount here.
    #[schema(pattern = "^[A-Z]{3}$", example = "USD")]
    pub currency: String,
    /// Whether any discount applies.
    pub discounted: bool,
    /// The units priced, when a quantity was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, minimum = 1, maximum = 100_000)]
    pub quantity: Option<u32>,
    /// `final_price` times `quantity`, when a quantity was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub line_total: Option<Money>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    currency: String,
    #[serde(default)]
    quantity_tiers: Vec<Tier>,
    prices: Vec<CatalogPrice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogPrice {
    sku: String,
    base_price: Money,
    #[serde(default)]
    discount_percent: u8,
    quantity_tiers: Option<Vec<Tier>>,
}

fn check_tiers(tiers: &[Tier], whose: &str) -> Result<(), DataFileError> {
    for tier in tiers {
        if tier.min_quantity < 2 || tier.discount_percent > 100 {
            return Err(DataFileError::Invalid(format!(
                "{whose}: a tier needs min_quantity >= 2 and discount_percent <= 100"
            )));
        }
    }
    Ok(())
}

impl PriceBook {
    /// The catalogue compiled into the binary.
    pub fn shipped() -> Self {
        // Checked by the `shipped_catalogue_is_valid` test, so this cannot fire.
        Self::from_json(SHIPPED_CATALOG).expect("the shipped catalogue is valid")
    }

    /// # Errors
    /// When the text is not a valid catalogue (bad JSON, bad sku, duplicate sku,
    /// discount over 100 %, invalid tier).
    pub fn from_json(text: &str) -> Result<Self, DataFileError> {
        let file: CatalogFile = serde_json::from_str(text)?;
        if file.currency.len() != 3 || !file.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(DataFileError::Invalid(format!(
                "currency {:?} is not an ISO 4217 code",
                file.currency
            )));
        }
        check_tiers(&file.quantity_tiers, "quantity_tiers")?;
        let mut entries = HashMap::new();
        let mut order = Vec::new();
        for price in file.prices {
            let sku = Sku::parse(&price.sku).map_err(|e| DataFileError::Invalid(e.to_string()))?;
            if price.discount_percent > 100 {
                return Err(DataFileError::Invalid(format!(
                    "{}: discount over 100%",
                    price.sku
                )));
            }
            if let Some(tiers) = &price.quantity_tiers {
                check_tiers(tiers, &price.sku)?;
            }
            let entry = PriceEntry {
                base: price.base_price,
                discount_percent: price.discount_percent,
                tiers: price.quantity_tiers,
            };
            let sku = sku.as_str().to_owned();
            if entries.insert(sku.clone(), entry).is_some() {
                return Err(DataFileError::Invalid(format!("{sku} is listed twice")));
            }
            order.push(sku);
        }
        Ok(Self {
            rules: PriceRules {
                currency: file.currency.into(),
                tiers: Arc::new(file.quantity_tiers),
            },
            entries: Arc::new(entries),
            order: Arc::new(order),
        })
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn rules(&self) -> &PriceRules {
        &self.rules
    }

    /// The price of `sku`, for one unit or for `quantity` units.
    pub fn quote(&self, sku: &Sku, quantity: Option<Quantity>) -> Option<Quote> {
        let entry = self.entries.get(sku.as_str())?;
        Some(self.rules.quote(sku, entry, quantity))
    }

    /// Every price, in catalogue order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &PriceEntry)> {
        self.order
            .iter()
            .filter_map(|sku| Some((sku.as_str(), self.entries.get(sku)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote(book: &PriceBook, sku: &str, quantity: Option<u64>) -> Quote {
        let sku = Sku::parse(sku).expect("valid sku");
        let quantity = quantity.map(|q| Quantity::parse(q).expect("valid quantity"));
        book.quote(&sku, quantity).expect("priced")
    }

    #[test]
    fn shipped_catalogue_is_valid() {
        let book = PriceBook::from_json(SHIPPED_CATALOG).expect("valid");
        assert!(book.len() >= 12);
    }

    #[test]
    fn contract_prices_hold() {
        let book = PriceBook::shipped();
        let laptop = quote(&book, "A001", None);
        assert_eq!(laptop.base_price, Money::from_cents(99_999));
        assert_eq!(laptop.discount_percent, 10);
        assert_eq!(laptop.final_price, Money::from_cents(89_999));
        assert!(laptop.discounted);
        assert_eq!(
            quote(&book, "A002", None).final_price,
            Money::from_cents(2_550)
        );
        assert!(!quote(&book, "A002", None).discounted);
        assert_eq!(
            quote(&book, "B001", None).final_price,
            Money::from_cents(19_900)
        );
        assert_eq!(
            quote(&book, "B002", None).final_price,
            Money::from_cents(54_900)
        );
        assert_eq!(
            quote(&book, "C001", None).final_price,
            Money::from_cents(1_496)
        );
    }

    #[test]
    fn the_best_of_item_discount_and_quantity_tier_applies() {
        let book = PriceBook::shipped();
        // A002 has no discount of its own: tiers 5 % at 10, 10 % at 50.
        assert_eq!(quote(&book, "A002", Some(9)).discount_percent, 0);
        assert_eq!(quote(&book, "A002", Some(10)).discount_percent, 5);
        assert_eq!(quote(&book, "A002", Some(50)).discount_percent, 10);
        // A001's own 10 % beats the 5 % tier; the 15 % tier beats it at 200.
        assert_eq!(quote(&book, "A001", Some(10)).discount_percent, 10);
        assert_eq!(quote(&book, "A001", Some(200)).discount_percent, 15);
        // C003 has its own tiers, replacing the catalogue's.
        assert_eq!(quote(&book, "C003", Some(10)).discount_percent, 0);
        assert_eq!(quote(&book, "C003", Some(24)).discount_percent, 20);
    }

    #[test]
    fn line_total_is_rounded_unit_price_times_quantity() {
        let book = PriceBook::shipped();
        let q = quote(&book, "C001", Some(3));
        assert_eq!(q.final_price, Money::from_cents(1_496));
        assert_eq!(q.line_total, Some(Money::from_cents(4_488)));
        assert_eq!(q.quantity, Some(3));
    }

    #[test]
    fn unknown_skus_have_no_price() {
        let book = PriceBook::shipped();
        assert!(
            book.quote(&Sku::parse("Z999").expect("valid"), None)
                .is_none()
        );
    }

    #[test]
    fn domain_types_reject_bad_input() {
        assert!(Sku::parse("A001").is_ok());
        for bad in ["", "A 1", "../etc", &"X".repeat(33)] {
            assert!(Sku::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Quantity::parse(1).is_ok());
        assert!(Quantity::parse(u64::from(MAX_QUANTITY)).is_ok());
        for bad in [0, u64::from(MAX_QUANTITY) + 1, u64::MAX] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prices_set_through_the_api_are_checked() {
        let ok = PriceEntry::parse(999.99, 10, Some(&[(2, 5), (10, 20)])).expect("valid");
        assert_eq!(ok.base, Money::from_cents(99_999));
        assert_eq!(ok.tiers.as_ref().map(Vec::len), Some(2));
        assert!(PriceEntry::parse(1_000_000.0, 100, None).is_ok());
        assert!(PriceEntry::parse(0.01, 0, Some(&[])).is_ok());
        let eleven: Vec<(u64, u64)> = (2..13).map(|q| (q, 1)).collect();
        type Case<'a> = (f64, u64, Option<&'a [(u64, u64)]>);
        let cases: [Case<'_>; 12] = [
            (0.0, 0, None),
            (-1.0, 0, None),
            (1_000_000.01, 0, None),
            (1_000_000.000_000_1, 0, None),
            (1.234, 0, None),
            (f64::NAN, 0, None),
            (1.0, 101, None),
            (1.0, 0, Some(&[(1, 5)])),
            (1.0, 0, Some(&[(10, 5), (10, 6)])),
            (1.0, 0, Some(&[(10, 5), (5, 6)])),
            (1.0, 0, Some(&[(10, 101)])),
            (1.0, 0, Some(&eleven)),
        ];
        for (base, discount, tiers) in cases {
            assert!(
                PriceEntry::parse(base, discount, tiers).is_err(),
                "{base} {discount} {tiers:?}"
            );
        }
    }

    #[test]
    fn invalid_catalogues_are_rejected_with_a_reason() {
        let cases = [
            ("not json", "not valid"),
            (r#"{"currency":"usd","prices":[]}"#, "currency"),
            (
                r#"{"currency":"USD","prices":[{"sku":"A 1","base_price":1}]}"#,
                "sku",
            ),
            (
                r#"{"currency":"USD","prices":[{"sku":"A1","base_price":-1}]}"#,
                "money",
            ),
            (
                r#"{"currency":"USD","prices":[{"sku":"A1","base_price":1,"discount_percent":101}]}"#,
                "100",
            ),
            (
                r#"{"currency":"USD","prices":[{"sku":"A1","base_price":1},{"sku":"A1","base_price":2}]}"#,
                "twice",
            ),
            (
                r#"{"currency":"USD","quantity_tiers":[{"min_quantity":1,"discount_percent":5}],"prices":[]}"#,
                "tier",
            ),
        ];
        for (text, expected) in cases {
            let err = PriceBook::from_json(text).expect_err(text).to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
