//! A customer's order history, one page at a time: which orders a listing
//! asks for ([`OrderQuery`]), where a page ended ([`Cursor`]), and how a page
//! is cut from what the store read ([`OrderPage`]).
//!
//! Paging is by keyset, not offset: orders are listed newest first by
//! `(created_at, id)` (ids are UUIDv7, so the id breaks ties between orders
//! placed in the same millisecond), and the next page starts strictly after
//! the last order shown. A page therefore costs the same however deep it is,
//! and orders placed while someone pages are never shown twice nor make
//! another one skip: they are newer than the first page, not in between.
//!
//! The cursor is opaque to clients: base64url (no padding) of a versioned
//! binary payload, see [`Cursor`]. It names a position only, not a customer
//! or a filter, so a doctored one can at worst move the page; the store still
//! reads only the customer's own orders.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use shared_http::paging::{DEFAULT_LIMIT, MAX_LIMIT};
use uuid::Uuid;

#[cfg(test)]
use crate::domain::OrderId;
use crate::domain::{CustomerId, Order, OrderStatus};

/// What is wrong with a listing's `status` or `cursor`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error(
        "status {0:?} is not an order status; use one or a comma list of \
         pending, confirmed, pending_pricing, rejected, failed, cancelled"
    )]
    UnknownStatus(String),
    #[error(
        "cursor is not one this service gave out: pass a next_cursor unchanged, or leave cursor out to start from the newest order"
    )]
    Cursor,
}

/// Which statuses a listing keeps: a set of them, or every one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusFilter(Vec<OrderStatus>);

impl StatusFilter {
    /// Every status: no filter.
    pub fn any() -> Self {
        Self(Vec::new())
    }

    /// `confirmed` or a comma list, `rejected,failed`; names repeated count once.
    ///
    /// Strict, as the documented pattern is: lower case, no spaces, no empty
    /// names (`confirmed,` is refused rather than guessed at).
    ///
    /// # Errors
    /// [`QueryError::UnknownStatus`] naming the first name that is not a status.
    pub fn parse(raw: &str) -> Result<Self, QueryError> {
        let mut statuses = Vec::new();
        for name in raw.split(',') {
            let status =
                OrderStatus::parse(name).map_err(|_| QueryError::UnknownStatus(name.to_owned()))?;
            if !statuses.contains(&status) {
                statuses.push(status);
            }
        }
        Ok(Self(statuses))
    }

    /// The statuses kept; empty for every status.
    pub fn statuses(&self) -> &[OrderStatus] {
        &self.0
    }
}

/// Where a page ended: the last order shown, by `(created_at, id)`. The next
/// page holds the orders strictly older in that order.
///
/// On the wire: base64url without padding of 25 bytes,
/// `[version = 1][created_at: i64, big-endian][id: the UUID's 16 bytes]`,
/// 34 characters. The version byte lets the layout change later without
/// misreading cursors that clients still hold. Anything else (another length
/// or version, padding, characters outside base64url) is refused, so a cut or
/// mangled cursor is caught; one that decodes is only a position, which
/// grants nothing (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    created_at: i64,
    id: Uuid,
}

const CURSOR_VERSION: u8 = 1;
const CURSOR_BYTES: usize = 1 + 8 + 16;
/// base64 of [`CURSOR_BYTES`] without padding.
const CURSOR_LEN: usize = (CURSOR_BYTES * 4).div_ceil(3);

impl Cursor {
    /// The position just after `order`.
    pub fn after(order: &Order) -> Self {
        Self {
            created_at: order.created_at,
            id: order.id.as_uuid(),
        }
    }

    /// # Errors
    /// [`QueryError::Cursor`] for anything [`Cursor::encode`] did not make.
    pub fn parse(raw: &str) -> Result<Self, QueryError> {
        if raw.len() != CURSOR_LEN {
            return Err(QueryError::Cursor);
        }
        // The engine refuses padding and non-canonical trailing bits, so each
        // cursor has exactly one spelling.
        let bytes = URL_SAFE_NO_PAD
            .decode(raw)
            .map_err(|_| QueryError::Cursor)?;
        let bytes: [u8; CURSOR_BYTES] = bytes.try_into().map_err(|_| QueryError::Cursor)?;
        let [version, payload @ ..] = bytes;
        if version != CURSOR_VERSION {
            return Err(QueryError::Cursor);
        }
        // 24 bytes: both always split off; the `?`s cannot fire.
        let (created_at, id) = payload.split_first_chunk::<8>().ok_or(QueryError::Cursor)?;
        Ok(Self {
            created_at: i64::from_be_bytes(*created_at),
            id: Uuid::from_slice(id).map_err(|_| QueryError::Cursor)?,
        })
    }

    /// The opaque text handed to clients as `next_cursor`.
    pub fn encode(&self) -> String {
        let mut bytes = [0u8; CURSOR_BYTES];
        bytes[0] = CURSOR_VERSION;
        bytes[1..9].copy_from_slice(&self.created_at.to_be_bytes());
        bytes[9..].copy_from_slice(self.id.as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The last order shown's `created_at` (milliseconds since the epoch).
    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    /// The last order shown's id, as the store keeps it (hyphenated, lower case).
    pub fn id(&self) -> String {
        self.id.hyphenated().to_string()
    }
}

/// One page of a customer's orders: whose, which statuses, after where, how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderQuery {
    customer_id: CustomerId,
    statuses: StatusFilter,
    after: Option<Cursor>,
    limit: u32,
}

impl OrderQuery {
    /// A query for the first page: every status, [`DEFAULT_LIMIT`] orders.
    pub fn new(customer_id: CustomerId) -> Self {
        Self {
            customer_id,
            statuses: StatusFilter::any(),
            after: None,
            limit: DEFAULT_LIMIT,
        }
    }

    pub fn with_statuses(self, statuses: StatusFilter) -> Self {
        Self { statuses, ..self }
    }

    pub fn after(self, cursor: Cursor) -> Self {
        Self {
            after: Some(cursor),
            ..self
        }
    }

    /// The page size, brought into 1..=[`MAX_LIMIT`] (clamped, not refused,
    /// as the listing always did).
    pub fn with_limit(self, limit: u32) -> Self {
        Self {
            limit: limit.clamp(1, MAX_LIMIT),
            ..self
        }
    }

    pub fn customer_id(&self) -> &CustomerId {
        &self.customer_id
    }

    pub fn statuses(&self) -> &[OrderStatus] {
        self.statuses.statuses()
    }

    pub fn cursor(&self) -> Option<&Cursor> {
        self.after.as_ref()
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }
}

/// A page of orders, newest first, and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    /// `None` when no older order matched: this is the last page.
    pub next: Option<Cursor>,
}

impl OrderPage {
    /// Cuts a page from `rows`, which the store read newest first with a
    /// limit one above `limit`: that extra row, when it came, only tells that
    /// another page follows, and is left for it. So `next` is `None` exactly
    /// when nothing older matched, and no client ever fetches an empty page.
    pub fn from_rows(mut rows: Vec<Order>, limit: u32) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = match rows.last() {
            Some(last) if more => Some(Cursor::after(last)),
            _ => None,
        };
        Self { orders: rows, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: &str, created_at: i64) -> Order {
        Order {
            id: OrderId::parse(id).expect("a UUID"),
            customer_id: CustomerId::parse("c1").expect("a customer id"),
            status: OrderStatus::Confirmed,
            pricing: None,
            currency: None,
            total: None,
            lines: Vec::new(),
            fingerprint: String::new(),
            failure_reason: None,
            created_at,
            updated_at: created_at,
        }
    }

    #[test]
    fn status_filters_accept_one_status_or_a_comma_list() {
        let cases: &[(&str, &[OrderStatus])] = &[
            ("confirmed", &[OrderStatus::Confirmed]),
            (
                "rejected,failed",
                &[OrderStatus::Rejected, OrderStatus::Failed],
            ),
            ("pending_pricing", &[OrderStatus::PendingPricing]),
            ("failed,failed", &[OrderStatus::Failed]),
            (
                "pending,confirmed,pending_pricing,rejected,failed,cancelled",
                &OrderStatus::ALL,
            ),
        ];
        for (raw, expected) in cases {
            let filter = StatusFilter::parse(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
            assert_eq!(filter.statuses(), *expected, "{raw:?}");
        }
    }

    #[test]
    fn status_filters_name_what_is_not_a_status() {
        let cases = [
            ("", ""),
            ("shipped", "shipped"),
            ("Confirmed", "Confirmed"),
            ("confirmed,", ""),
            ("confirmed, rejected", " rejected"),
            ("confirmed,,failed", ""),
        ];
        for (raw, named) in cases {
            assert_eq!(
                StatusFilter::parse(raw),
                Err(QueryError::UnknownStatus(named.to_owned())),
                "{raw:?}"
            );
        }
        let message = QueryError::UnknownStatus("shipped".into()).to_string();
        assert!(message.contains("\"shipped\"") && message.contains("pending_pricing"));
    }

    #[test]
    fn the_filter_lists_every_status() {
        for status in OrderStatus::ALL {
            assert_eq!(
                StatusFilter::parse(status.as_str()).map(|f| f.statuses().to_vec()),
                Ok(vec![status])
            );
        }
    }

    const ID: &str = "0193a4a4-7f3c-7c1e-9d2a-5b1f3e2d4c6b";

    #[test]
    fn cursors_read_back_what_they_wrote() {
        let cases = [
            (ID, 1_764_060_000_123),
            ("00000000-0000-0000-0000-000000000000", 0),
            ("ffffffff-ffff-ffff-ffff-ffffffffffff", -1),
            (ID, i64::MAX),
            (ID, i64::MIN),
        ];
        for (id, created_at) in cases {
            let cursor = Cursor::after(&order(id, created_at));
            let text = cursor.encode();
            assert_eq!(text.len(), CURSOR_LEN, "{text}");
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{text}"
            );
            let read = Cursor::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(read, cursor);
            assert_eq!((read.created_at(), read.id()), (created_at, id.to_owned()));
        }
    }

    #[test]
    fn cursors_hold_the_stored_form_of_the_id() {
        // Upper case reads back in the stored (lower case) form.
        let upper = Cursor::after(&order(&ID.to_uppercase(), 1));
        assert_eq!(upper.id(), ID);
    }

    #[test]
    fn cursors_it_did_not_make_are_refused() {
        let good = Cursor::after(&order(ID, 1)).encode();
        let payload = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let mut version_2 = URL_SAFE_NO_PAD.decode(&good).expect("decodes");
        version_2[0] = 2;
        let cases = [
            String::new(),
            "not a cursor".into(),
            "%".repeat(CURSOR_LEN),
            format!("{good}="),
            format!("{good}A"),
            good[..good.len() - 1].into(),
            format!("+{}", &good[1..]),
            format!("{}=", &good[1..]),
            // The last character's low 4 bits are padding, which must be 0.
            format!("{}B", &good[..good.len() - 1]),
            payload(&version_2),
            payload(&[1]),
            payload(&[1; CURSOR_BYTES - 1]),
            payload(&[1; CURSOR_BYTES + 1]),
            "A".repeat(10_000),
        ];
        for raw in &cases {
            assert_eq!(Cursor::parse(raw), Err(QueryError::Cursor), "{raw:?}");
        }
    }

    #[test]
    fn a_page_keeps_the_extra_row_for_the_next_one() {
        let rows: Vec<Order> = (0..4)
            .map(|n| order(&format!("0193a4a4-7f3c-7c1e-9d2a-5b1f3e2d4c6{n}"), 10 - n))
            .collect();

        let page = OrderPage::from_rows(rows.clone(), 3);
        assert_eq!(page.orders, rows[..3]);
        assert_eq!(page.next, Some(Cursor::after(&rows[2])));

        let last = OrderPage::from_rows(rows[..3].to_vec(), 3);
        assert_eq!(last.orders.len(), 3);
        assert_eq!(last.next, None, "nothing older: the last page");

        let empty = OrderPage::from_rows(Vec::new(), 3);
        assert!(empty.orders.is_empty() && empty.next.is_none());
    }

    #[test]
    fn limits_are_clamped_as_before() {
        let customer = CustomerId::parse("c1").expect("valid");
        let query = OrderQuery::new(customer);
        assert_eq!(query.limit(), DEFAULT_LIMIT);
        assert_eq!(query.clone().with_limit(0).limit(), 1);
        assert_eq!(query.clone().with_limit(200).limit(), 200);
        assert_eq!(query.with_limit(u32::MAX).limit(), MAX_LIMIT);
    }
}
