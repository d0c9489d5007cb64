//! Wall-clock time as milliseconds since the Unix epoch (what the stores keep)
//! and as RFC 3339 text (what the APIs show).

use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    // Fits in i64 until the year 292 million.
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// A duration in whole milliseconds, saturating (for logs and JSON).
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// [`now_ms`] less `d`: the time, in the stores' unit, that was `d` ago.
pub fn ms_ago(d: Duration) -> i64 {
    now_ms().saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `1764060000123` -> `"2025-11-25T08:40:00.123Z"`.
pub fn to_rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// `"2025-11-25T08:40:00.123Z"` -> `1764060000123`; `None` when it is not RFC 3339.
pub fn from_rfc3339(text: &str) -> Option<i64> {
    let parsed = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_milliseconds_as_rfc3339_utc() {
        assert_eq!(to_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(to_rfc3339(1_764_060_000_123), "2025-11-25T08:40:00.123Z");
        assert_eq!(
            from_rfc3339("2025-11-25T08:40:00.123Z"),
            Some(1_764_060_000_123)
        );
        assert_eq!(from_rfc3339("yesterday"), None);
    }
}
