//! Money in integer minor units (cents). Decimals exist only on the wire.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount in cents. Serialized as a decimal number with at most two places
/// (`89999` -> `899.99`), parsed back the same way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

impl Money {
    pub const ZERO: Money = Money(0);

    pub fn from_cents(cents: i64) -> Self {
        Self(cents)
    }

    pub fn cents(self) -> i64 {
        self.0
    }

    /// `899.99` -> 89999 cents. `None` for negative, non-finite, huge values
    /// or more than two decimal places.
    pub fn from_decimal(amount: f64) -> Option<Self> {
        if !amount.is_finite() || !(0.0..=1e13).contains(&amount) {
            return None;
        }
        let cents = (amount * 100.0).round();
        // Accept binary-floating-point noise (0.1 + 0.2), reject 1.234.
        if ((amount * 100.0) - cents).abs() > 1e-6 {
            return None;
        }
        // Whole and within 0..=1e15, as checked above: the cast is exact.
        #[allow(clippy::cast_possible_truncation)]
        Some(Self(cents as i64))
    }

    pub fn as_decimal(self) -> f64 {
        self.0 as f64 / 100.0
    }

    /// This amount less `percent` per cent, rounded half up to the cent.
    pub fn percent_off(self, percent: u8) -> Self {
        let percent = i64::from(percent.min(100));
        Self((self.0 * (100 - percent) + 50) / 100)
    }

    /// `None` on overflow.
    pub fn checked_mul(self, quantity: u32) -> Option<Self> {
        self.0.checked_mul(i64::from(quantity)).map(Self)
    }

    /// `None` on overflow.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_decimal())
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let amount = f64::deserialize(d)?;
        Money::from_decimal(amount).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{amount} is not an amount of money (non-negative, at most 2 decimals)"
            ))
        })
    }
}

/// On the wire a decimal number of at most two places; the schema says so in
/// words, since `multipleOf: 0.01` misfires on binary floating point.
impl utoipa::PartialSchema for Money {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .minimum(Some(0))
            .description(Some(
                "An amount of money in the response's currency: a decimal number with at most two places.",
            ))
            .examples([serde_json::json!(899.99)])
            .into()
    }
}

impl utoipa::ToSchema for Money {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimals_to_cents() {
        assert_eq!(Money::from_decimal(999.99), Some(Money::from_cents(99_999)));
        assert_eq!(Money::from_decimal(25.5), Some(Money::from_cents(2_550)));
        assert_eq!(Money::from_decimal(0.1 + 0.2), Some(Money::from_cents(30)));
        for bad in [-1.0, 1.234, f64::NAN, f64::INFINITY, 1e14] {
            assert_eq!(Money::from_decimal(bad), None, "{bad}");
        }
    }

    #[test]
    fn discounts_round_half_up_to_the_cent() {
        assert_eq!(
            Money::from_cents(99_999).percent_off(10),
            Money::from_cents(89_999)
        );
        assert_eq!(
            Money::from_cents(1_575).percent_off(5),
            Money::from_cents(1_496)
        );
        assert_eq!(
            Money::from_cents(1_000).percent_off(0),
            Money::from_cents(1_000)
        );
        assert_eq!(Money::from_cents(1_000).percent_off(100), Money::ZERO);
    }

    #[test]
    fn serializes_as_a_two_place_decimal() {
        let json = serde_json::to_string(&[Money::from_cents(89_999), Money::from_cents(2_550)])
            .expect("serializes");
        assert_eq!(json, "[899.99,25.5]");
        assert_eq!(Money::from_cents(89_999).to_string(), "899.99");
    }
}
