//! Small validation helpers for identifiers that travel between services.

/// 1..=`max_len` characters of `A-Z a-z 0-9 - _ .`: safe in paths, logs and SQL
/// parameters without escaping.
pub fn is_identifier(s: &str, max_len: usize) -> bool {
    (1..=max_len).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Deserializes a count (a quantity) from a JSON number with no fractional
/// part: `2`, and also `2.0`, which JSON Schema (and so the API description)
/// counts as the integer 2. `2.5`, `-1` and non-numbers are errors.
///
/// # Errors
/// When the value is not a whole, non-negative number that fits in `u64`.
pub fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct WholeNumber;

    impl serde::de::Visitor<'_> for WholeNumber {
        type Value = u64;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number")
        }

        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<u64, E> {
            Ok(n)
        }

        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<u64, E> {
            u64::try_from(n).map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(n), &self))
        }

        fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<u64, E> {
            // 2^64 is exactly representable; anything below it with no
            // fraction converts exactly.
            if n.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&n) {
                // Whole and within 0..2^64, as just checked: the cast is exact.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Ok(n as u64)
            } else {
                Err(E::invalid_type(serde::de::Unexpected::Float(n), &self))
            }
        }
    }

    deserializer.deserialize_any(WholeNumber)
}

/// A stored or received value that names none of the cases the code knows
/// (a status written by a newer version, a hand-edited row): an error to
/// report, never a value to read as some default case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownValue {
    /// What the value should have been, e.g. `"order status"`.
    pub what: &'static str,
    pub value: String,
}

impl UnknownValue {
    pub fn new(what: &'static str, value: &str) -> Self {
        Self {
            what,
            value: value.to_owned(),
        }
    }

    /// The one of `cases` whose `name` is `value`: how an enum reads the
    /// text form it writes.
    ///
    /// # Errors
    /// When no case has that name.
    pub fn find<T: Copy>(
        what: &'static str,
        cases: impl IntoIterator<Item = T>,
        name: impl Fn(T) -> &'static str,
        value: &str,
    ) -> Result<T, Self> {
        cases
            .into_iter()
            .find(|case| name(*case) == value)
            .ok_or_else(|| Self::new(what, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(is_identifier("A001", 32));
        assert!(is_identifier("order-1_x.y", 32));
        for bad in ["", "a b", "a/b", "é", "x;drop"] {
            assert!(!is_identifier(bad, 32), "{bad:?}");
        }
        assert!(!is_identifier("abcd", 3));
    }

    #[derive(serde::Deserialize)]
    struct Line {
        #[serde(deserialize_with = "whole_number")]
        quantity: u64,
    }

    #[test]
    fn whole_numbers_with_or_without_a_zero_fraction() {
        for (text, expected) in [("2", 2), ("2.0", 2), ("0", 0), ("1e3", 1000)] {
            let line: Line = serde_json::from_str(&format!(r#"{{"quantity": {text}}}"#))
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(line.quantity, expected, "{text}");
        }
        for text in ["2.5", "-1", "-1.0", "1e300", "\"2\"", "null", "true"] {
            let parsed = serde_json::from_str::<Line>(&format!(r#"{{"quantity": {text}}}"#));
            assert!(parsed.is_err(), "{text}");
        }
    }
}
