//! Page sizes for listings: the default and largest `?limit=`, and the query
//! of a change history (`GET …/history?limit=`) that refuses a limit outside
//! them.
//!
//! A listing that would rather clamp an out-of-range limit than refuse it
//! uses [`DEFAULT_LIMIT`] and [`MAX_LIMIT`] with its own query type.

use serde::Deserialize;
use utoipa::IntoParams;

/// Page size when the client names none.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page.
pub const MAX_LIMIT: u32 = 200;

/// Keeps the bounds written out in [`HistoryQuery`]'s description in step.
const _: () = assert!(DEFAULT_LIMIT == 50 && MAX_LIMIT == 200);

/// A `limit` outside 1..=[`MAX_LIMIT`], for a listing that refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("limit must be between 1 and {MAX_LIMIT}")]
pub struct LimitOutOfRange;

/// The query of a change history: how many changes, newest first.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// How many changes to list, newest first (default 50).
    #[param(minimum = 1, maximum = 200, example = 20)]
    limit: Option<u32>,
}

impl HistoryQuery {
    /// The page size asked for, [`DEFAULT_LIMIT`] when none was.
    ///
    /// # Errors
    /// [`LimitOutOfRange`] for a limit of 0 or above [`MAX_LIMIT`].
    pub fn limit(&self) -> Result<u32, LimitOutOfRange> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if (1..=MAX_LIMIT).contains(&limit) {
            Ok(limit)
        } else {
            Err(LimitOutOfRange)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(limit: Option<u32>) -> HistoryQuery {
        HistoryQuery { limit }
    }

    #[test]
    fn a_limit_in_range_is_taken_as_given() {
        assert_eq!(query(None).limit(), Ok(DEFAULT_LIMIT));
        assert_eq!(query(Some(1)).limit(), Ok(1));
        assert_eq!(query(Some(MAX_LIMIT)).limit(), Ok(MAX_LIMIT));
    }

    #[test]
    fn a_limit_out_of_range_is_refused() {
        for limit in [0, MAX_LIMIT + 1, u32::MAX] {
            assert_eq!(query(Some(limit)).limit(), Err(LimitOutOfRange), "{limit}");
        }
        assert_eq!(
            LimitOutOfRange.to_string(),
            "limit must be between 1 and 200"
        );
    }
}
