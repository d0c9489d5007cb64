//! The stock-keeping unit: the one identifier all three services share.

use shared_http::validate::is_identifier;

/// A stock-keeping unit, e.g. `A001`: 1-32 letters, digits, `-`, `_` or `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sku(String);

/// A string that is not a plausible sku (it is kept for the error message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sku {0:?} is not 1-32 letters, digits, '-', '_' or '.'")]
pub struct InvalidSku(pub String);

impl Sku {
    /// # Errors
    /// When `raw` is not a plausible sku.
    pub fn parse(raw: &str) -> Result<Self, InvalidSku> {
        if is_identifier(raw, 32) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidSku(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `A001, B002`: skus for a sentence (an error's detail).
    pub fn join(skus: &[Sku]) -> String {
        skus.iter().map(Sku::as_str).collect::<Vec<_>>().join(", ")
    }
}

/// On the wire a sku is its text; reading one checks it like [`Sku::parse`].
impl serde::Serialize for Sku {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Sku {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Sku {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl utoipa::PartialSchema for Sku {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        shared_http::openapi::identifier_schema(32, "A stock-keeping unit.", "A001")
    }
}

impl utoipa::ToSchema for Sku {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_skus_parse_and_others_say_why_not() {
        assert_eq!(
            Sku::parse("A-001.b_2").map(|s| s.as_str().to_owned()),
            Ok("A-001.b_2".to_owned())
        );
        assert_eq!(Sku::parse(""), Err(InvalidSku(String::new())));
        assert!(Sku::parse(&"A".repeat(33)).is_err());
        assert!(Sku::parse("A 1").is_err());
        let error = Sku::parse("A/1").err().map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some(r#"sku "A/1" is not 1-32 letters, digits, '-', '_' or '.'"#)
        );
    }
}
