//! Small validation helpers for identifiers that travel between services.

/// 1..=`max_len` characters of `A-Z a-z 0-9 - _ .`: safe in paths, logs and SQL
/// parameters without escaping.
pub fn is_identifier(s: &str, max_len: usize) -> bool {
    (1..=max_len).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
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
}
