//! Who may place, see and cancel which orders (`shared_auth` verifies the
//! tokens; the rules on orders are here, in one place).
//!
//! A customer's token acts for its `sub`: orders are placed for it, and only
//! its own orders can be seen or cancelled; someone else's order answers
//! exactly as an unknown one would (404), so that ids do not leak. A token
//! with [`OrdersAdmin`] sees and cancels every order. With auth off, or on
//! without `AUTH_REQUIRED`, an anonymous caller is served as before tokens:
//! the customer is whatever the request names.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use shared_auth::{Caller, Scope};
use shared_events::CloudEvent;
use shared_events::feed::Shown;

use crate::events::ORDER_EVENTS;

use crate::domain::CustomerId;
use crate::error::Error;

/// Every customer's orders: support staff and operators.
pub struct OrdersAdmin;

impl Scope for OrdersAdmin {
    const NAME: &'static str = "orders:admin";
}

/// What the caller of an order route may do. An extractor: a request that
/// needs a token and has none is answered 401 before its body is read.
#[derive(Debug, Clone)]
pub enum Access {
    /// Anonymous where nothing is enforced: every order, as without auth.
    Open,
    /// A verified token: its subject's orders only.
    Customer(String),
    /// A verified token with [`OrdersAdmin`]: every order (placing acts for
    /// its own subject still).
    Admin(String),
}

impl Access {
    /// # Errors
    /// 401 when tokens are required and none was sent.
    pub fn of(caller: &Caller) -> Result<Self, Error> {
        Ok(match caller.require_subject()? {
            None => Self::Open,
            Some(subject) if caller.has_scope(OrdersAdmin::NAME) => Self::Admin(subject.into()),
            Some(subject) => Self::Customer(subject.into()),
        })
    }

    fn subject(&self) -> Option<&str> {
        match self {
            Self::Open => None,
            Self::Customer(subject) | Self::Admin(subject) => Some(subject),
        }
    }

    /// Whether an order of `owner` may be seen (and cancelled).
    pub fn may_see(&self, owner: &CustomerId) -> bool {
        match self {
            Self::Open | Self::Admin(_) => true,
            Self::Customer(subject) => subject == owner.as_str(),
        }
    }

    /// The customer a new order is for: the token's subject, which the body
    /// may leave out but not contradict; without a token, the body's.
    ///
    /// # Errors
    /// 400 when no customer is named or it is malformed (a token's subject
    /// included), 403 `customer_mismatch` when the body names another.
    pub fn customer_for_order(&self, named: Option<&str>) -> Result<CustomerId, Error> {
        let Some(subject) = self.subject() else {
            let named = named.ok_or_else(|| required("customer_id"))?;
            return Ok(CustomerId::parse(named)?);
        };
        let customer = CustomerId::parse(subject)?;
        match named.map(CustomerId::parse).transpose()? {
            Some(other) if other != customer => Err(Error::CustomerMismatch {
                customer_id: other.as_str().to_owned(),
            }),
            _ => Ok(customer),
        }
    }

    /// Whose orders a listing is about, and whether the caller may see them:
    /// a customer's token lists its own (the default), and asking for
    /// another's gets an empty page, never their orders.
    ///
    /// # Errors
    /// 400 when no customer is named or it is malformed.
    pub fn customer_to_list(&self, named: Option<&str>) -> Result<(CustomerId, bool), Error> {
        let customer = match (named, self.subject()) {
            (Some(named), _) => CustomerId::parse(named)?,
            (None, Some(subject)) => CustomerId::parse(subject)?,
            (None, None) => return Err(required("customer_id")),
        };
        let visible = self.may_see(&customer);
        Ok((customer, visible))
    }
}

fn required(name: &str) -> Error {
    Error::InvalidRequest(format!("{name} is required"))
}

impl FromRequest for Access {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        ready(
            Caller::from_request(req, payload)
                .into_inner()
                .map_err(|e| Error::Unexpected(anyhow::anyhow!("reading the caller: {e}")))
                .and_then(|caller| Self::of(&caller)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> CustomerId {
        CustomerId::parse(s).expect("a customer id")
    }

    #[test]
    fn customers_see_their_own_orders_and_admins_every_one() {
        let alice = Access::Customer("alice".into());
        assert!(alice.may_see(&id("alice")));
        assert!(!alice.may_see(&id("bob")));
        assert!(Access::Admin("ops".into()).may_see(&id("bob")));
        assert!(Access::Open.may_see(&id("bob")));
    }

    #[test]
    fn orders_are_placed_for_the_token_subject() {
        let alice = Access::Customer("alice".into());
        assert_eq!(alice.customer_for_order(None).ok(), Some(id("alice")));
        assert_eq!(
            alice.customer_for_order(Some(" alice")).ok(),
            Some(id("alice"))
        );
        assert!(matches!(
            alice.customer_for_order(Some("bob")),
            Err(Error::CustomerMismatch { .. })
        ));
        assert!(matches!(
            Access::Admin("ops".into()).customer_for_order(Some("bob")),
            Err(Error::CustomerMismatch { .. })
        ));
        assert!(matches!(
            Access::Open.customer_for_order(None),
            Err(Error::InvalidRequest(_))
        ));
        assert_eq!(
            Access::Open.customer_for_order(Some("bob")).ok(),
            Some(id("bob"))
        );
        let unfit = Access::Customer("x".repeat(65));
        assert!(matches!(
            unfit.customer_for_order(None),
            Err(Error::Unparsable(_))
        ));
    }

    #[test]
    fn listings_default_to_the_subject_and_hide_others() {
        let alice = Access::Customer("alice".into());
        assert_eq!(alice.customer_to_list(None).ok(), Some((id("alice"), true)));
        assert_eq!(
            alice.customer_to_list(Some("bob")).ok(),
            Some((id("bob"), false))
        );
        let admin = Access::Admin("ops".into());
        assert_eq!(
            admin.customer_to_list(Some("bob")).ok(),
            Some((id("bob"), true))
        );
        assert!(Access::Open.customer_to_list(None).is_err());
    }
}

/// What a listener of the live feed is shown: every event whole where
/// orders are open (no tokens verified) or to [`OrdersAdmin`]; a customer's
/// own orders' events whole; everything else in its [`public_form`] (none
/// for order events). With tokens verified, a listener without one is shown
/// public forms only, whether or not tokens are required.
#[derive(Debug, Clone)]
pub enum Audience {
    Everything,
    Own(String),
    Public,
}

impl Audience {
    /// The audience of `caller`; `tokens_on`: tokens are verified here.
    pub fn of(caller: &Caller, tokens_on: bool) -> Self {
        match Access::of(caller) {
            Ok(Access::Admin(_)) => Self::Everything,
            Ok(Access::Open) if !tokens_on => Self::Everything,
            Ok(Access::Customer(subject)) => Self::Own(subject),
            Ok(Access::Open) | Err(_) => Self::Public,
        }
    }

    pub fn shows(&self, event: &CloudEvent) -> Shown {
        match self {
            Self::Everything => Shown::Whole,
            Self::Own(subject) if is_order_of(event, subject) => Shown::Whole,
            Self::Own(_) | Self::Public => Shown::Public,
        }
    }
}

fn is_order_of(event: &CloudEvent, subject: &str) -> bool {
    event.event_type.starts_with(ORDER_EVENTS)
        && event
            .data
            .get("customer_id")
            .and_then(serde_json::Value::as_str)
            == Some(subject)
}

/// Fields of an event's `data` that name someone (the staff member who made
/// a change, a customer) or an order or reservation: not for the public.
const PRIVATE_FIELDS: [&str; 4] = ["actor", "customer_id", "order_id", "reservation_id"];

/// The public form of `event`, as the shop front needs it (sku, stock,
/// price): none for an order event; others without [`PRIVATE_FIELDS`], and
/// without their `subject` when it is one of those (a reservation's id).
pub fn public_form(event: &CloudEvent) -> Option<serde_json::Value> {
    if event.event_type.starts_with(ORDER_EVENTS) {
        return None;
    }
    let mut value = serde_json::to_value(event).ok()?;
    let mut subject_private = false;
    if let Some(data) = value
        .get_mut("data")
        .and_then(serde_json::Value::as_object_mut)
    {
        for field in PRIVATE_FIELDS {
            if let Some(removed) = data.remove(field) {
                subject_private |= removed.as_str() == Some(event.subject.as_str());
            }
        }
    }
    if subject_private {
        value.as_object_mut()?.remove("subject");
    }
    Some(value)
}

#[cfg(test)]
mod public_tests {
    use super::*;
    use serde_json::json;

    fn event(event_type: &str, subject: &str, data: &serde_json::Value) -> CloudEvent {
        CloudEvent::new("test", event_type, subject, data).expect("an event")
    }

    #[test]
    fn public_forms_keep_the_shop_front_and_drop_who_and_which_order() {
        let stock = event(
            "shop.inventory.stock_changed",
            "A001",
            &json!({"sku": "A001", "stock": 7, "actor": "staff-7"}),
        );
        let public = public_form(&stock).expect("public");
        assert_eq!(public["subject"], "A001");
        assert_eq!(public["data"], json!({"sku": "A001", "stock": 7}));
        let expiry = event(
            "shop.inventory.reservation_expired",
            "r-1",
            &json!({"reservation_id": "r-1", "lines": [{"sku": "A001", "quantity": 1}]}),
        );
        let public = public_form(&expiry).expect("public");
        assert!(public.get("subject").is_none(), "{public}");
        assert_eq!(
            public["data"],
            json!({"lines": [{"sku": "A001", "quantity": 1}]})
        );
        let order = event("shop.order.confirmed", "o-1", &json!({"customer_id": "c1"}));
        assert_eq!(public_form(&order), None);
    }

    #[test]
    fn customers_get_their_own_orders_whole_and_the_rest_public() {
        let mine = event("shop.order.confirmed", "o-1", &json!({"customer_id": "c1"}));
        let theirs = event("shop.order.confirmed", "o-2", &json!({"customer_id": "c2"}));
        let stock = event(
            "shop.inventory.stock_changed",
            "A001",
            &json!({"sku": "A001"}),
        );
        let c1 = Audience::Own("c1".into());
        assert_eq!(c1.shows(&mine), Shown::Whole);
        assert_eq!(c1.shows(&theirs), Shown::Public);
        assert_eq!(c1.shows(&stock), Shown::Public);
        assert_eq!(Audience::Everything.shows(&stock), Shown::Whole);
        assert_eq!(Audience::Public.shows(&mine), Shown::Public);
    }
}
