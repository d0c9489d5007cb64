//! `POST /orders`, `GET /orders`, `GET /orders/{id}`, `POST /orders/{id}/cancel`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use shared_http::openapi::PROBLEM_JSON;
use shared_http::paging::DEFAULT_LIMIT;
use shared_http::problem::ProblemDetails;
use shared_http::timestamp::to_rfc3339;
use shared_vocabulary::money::Money;
use utoipa::{IntoParams, ToSchema};

use shared_vocabulary::lines::{MAX_LINES, MAX_QUANTITY, SkusOrItems};

use crate::domain::{
    CustomerId, IdempotencyKey, NewOrder, Order, OrderId, OrderStatus, ParseError, PricingSource,
    Sku,
};
use crate::error::{Error, OrderProblem, SkusProblem};
use crate::history::{Cursor, OrderQuery, StatusFilter};
use crate::saga::{Placed, Saga};
use crate::scopes::Access;
use crate::store::Store;

/// An order: one unit of each of `skus`, or `items` with quantities; one of the two.
///
/// Read through [`RawCreateOrderRequest`], so that a body with both or
/// neither gets a message saying so, and a mistyped field one naming it.
#[derive(Deserialize, ToSchema)]
#[serde(untagged, try_from = "RawCreateOrderRequest")]
pub enum CreateOrderRequest {
    Skus(OrderBySkus),
    Items(OrderByItems),
}

/// One unit of each sku.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"customer_id": "test", "skus": ["A001", "B001"]}))]
pub struct OrderBySkus {
    /// Whose order. Required without an access token; with one it is the
    /// token's subject, which this may repeat but not contradict (`null` is
    /// the same as leaving it out).
    #[schema(value_type = CustomerId, required = false, nullable = true)]
    customer_id: Option<String>,
    /// 1 to 100 distinct skus; a sku listed twice is ordered twice.
    #[schema(value_type = Vec<Sku>, min_items = 1)]
    skus: Vec<String>,
}

/// Each sku with its quantity.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"customer_id": "c1", "items": [{"sku": "A001", "quantity": 2}]}))]
pub struct OrderByItems {
    /// Whose order. Required without an access token; with one it is the
    /// token's subject, which this may repeat but not contradict (`null` is
    /// the same as leaving it out).
    #[schema(value_type = CustomerId, required = false, nullable = true)]
    customer_id: Option<String>,
    /// 1 to 100 distinct skus; lines naming the same sku are added up.
    #[schema(min_items = 1)]
    items: Vec<ItemIn>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemIn {
    #[schema(value_type = Sku)]
    sku: String,
    #[schema(minimum = 1, maximum = 10_000, example = 2)]
    #[serde(deserialize_with = "shared_http::validate::whole_number")]
    quantity: u64,
}

/// Keeps the documented bounds and the domain's in step.
const _: () = assert!(MAX_QUANTITY == 10_000 && MAX_LINES == 100);

/// The body as sent, both shapes at once.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCreateOrderRequest {
    #[serde(default)]
    customer_id: Option<String>,
    skus: Option<Vec<String>>,
    items: Option<Vec<ItemIn>>,
}

impl TryFrom<RawCreateOrderRequest> for CreateOrderRequest {
    type Error = &'static str;
    fn try_from(raw: RawCreateOrderRequest) -> Result<Self, Self::Error> {
        let customer_id = raw.customer_id;
        Ok(match SkusOrItems::choose(raw.skus, raw.items)? {
            SkusOrItems::Skus(skus) => Self::Skus(OrderBySkus { customer_id, skus }),
            SkusOrItems::Items(items) => Self::Items(OrderByItems { customer_id, items }),
        })
    }
}

impl CreateOrderRequest {
    /// The order, for the customer `access` allows ([`Access::customer_for_order`]).
    fn into_new_order(self, access: &Access) -> Result<NewOrder, Error> {
        let (customer_id, lines): (Option<String>, Vec<(String, u64)>) = match self {
            CreateOrderRequest::Skus(o) => {
                (o.customer_id, o.skus.into_iter().map(|s| (s, 1)).collect())
            }
            CreateOrderRequest::Items(o) => (
                o.customer_id,
                o.items.into_iter().map(|i| (i.sku, i.quantity)).collect(),
            ),
        };
        let customer = access.customer_for_order(customer_id.as_deref())?;
        Ok(NewOrder::parse(customer.as_str(), &lines)?)
    }
}

/// An order, its lines and their prices.
#[derive(Serialize, ToSchema)]
#[schema(
    as = Order,
    example = json!({
        "order_id": "0193a4a4-7f3c-7c1e-9d2a-5b1f3e2d4c6b", "customer_id": "test",
        "status": "confirmed",
        "items": [{"sku": "A001", "name": "Laptop", "quantity": 1, "unit_price": 899.99,
                   "discount_percent": 10, "line_total": 899.99}],
        "total": 899.99, "currency": "USD", "pricing": "live",
        "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:00:00Z"
    })
)]
pub struct OrderResponse {
    order_id: String,
    #[schema(example = "c1")]
    customer_id: String,
    status: OrderStatus,
    items: Vec<OrderItemResponse>,
    /// Null while any line is unpriced.
    total: Option<Money>,
    /// ISO 4217 code of every amount; null while no line is priced.
    #[schema(pattern = "^[A-Z]{3}$", example = "USD")]
    currency: Option<String>,
    /// `live`, or `fallback` when pricing was unreachable and the last prices seen were used;
    /// null until the order is priced.
    pricing: Option<PricingSource>,
    #[schema(format = DateTime)]
    created_at: String,
    /// Always sent; optional in the description because the contract's example omits it.
    #[schema(format = DateTime, required = false)]
    updated_at: String,
    /// Why a `failed` or `rejected` order did not go through.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    failure_reason: Option<String>,
}

/// One line: null prices mean the sku had never been priced and pricing was down.
#[derive(Serialize, ToSchema)]
pub struct OrderItemResponse {
    #[schema(value_type = Sku)]
    sku: String,
    name: Option<String>,
    #[schema(minimum = 1, maximum = 10_000)]
    quantity: u32,
    unit_price: Option<Money>,
    #[schema(maximum = 100)]
    discount_percent: Option<u8>,
    line_total: Option<Money>,
}

impl From<Order> for OrderResponse {
    fn from(o: Order) -> Self {
        Self {
            order_id: o.id.as_str().to_owned(),
            customer_id: o.customer_id.as_str().to_owned(),
            status: o.status,
            items: o
                .lines
                .into_iter()
                .map(|l| OrderItemResponse {
                    sku: l.sku.as_str().to_owned(),
                    name: l.name,
                    quantity: l.quantity,
                    unit_price: l.unit_price,
                    discount_percent: l.discount_percent,
                    line_total: l.line_total,
                })
                .collect(),
            total: o.total,
            currency: o.currency,
            pricing: o.pricing,
            created_at: to_rfc3339(o.created_at),
            updated_at: to_rfc3339(o.updated_at),
            failure_reason: o.failure_reason,
        }
    }
}

/// The order id of a path: text that cannot be an order id names no order.
fn order_id(raw: String) -> Result<OrderId, Error> {
    OrderId::parse(&raw).ok_or(Error::OrderNotFound { id: raw })
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<IdempotencyKey>, Error> {
    match req.headers().get("idempotency-key") {
        None => Ok(None),
        Some(value) => {
            let text = value.to_str().map_err(|_| ParseError::IdempotencyKey)?;
            Ok(Some(IdempotencyKey::parse(text)?))
        }
    }
}

/// Places an order: reserves the stock, prices it, confirms the stock.
///
/// When pricing is down the order is still taken, at the last prices seen
/// (`pricing: "fallback"`); a sku never priced has `unit_price: null` and the
/// order is `pending_pricing`.
#[utoipa::path(
    tag = "orders",
    params(
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 128, pattern = "^[!-~]+$",
            description = "Retrying with the same key returns the first order (200) instead of placing a second."),
    ),
    responses(
        (status = 201, description = "Placed.", body = OrderResponse,
            headers(("Location" = String, description = "`/orders/{order_id}`"))),
        (status = 200, description = "A retry with the same `Idempotency-Key`: the first order.", body = OrderResponse,
            headers(("Idempotent-Replayed" = String, description = "`true`"))),
        (status = 400, description = "`invalid_request`: a bad customer, sku, quantity or `Idempotency-Key`, or not 1 to 100 skus; \
            no `customer_id` and no access token.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 401, description = "`unauthorized`: no access token where `AUTH_REQUIRED` is on, or a bad one.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 403, description = "`customer_mismatch`: `customer_id` is not the access token's subject.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 409, description = "`insufficient_stock`: not enough stock for the listed `skus`; \
            `order_in_progress`: the first request with this `Idempotency-Key` is still being placed (`Retry-After`).",
            body = SkusProblem, content_type = PROBLEM_JSON),
        (status = 422, description = "`unknown_sku`: no item has the listed `skus`; \
            `idempotency_key_reused`: the key was first used for a different order.",
            body = SkusProblem, content_type = PROBLEM_JSON),
        (status = 502, description = "`inventory_refused`: inventory refused this service's call.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 503, description = "`inventory_unavailable`: inventory cannot be reached or its breaker is open; \
            nothing was held. `dependency_busy`: too many calls to inventory in flight (`INVENTORY_MAX_IN_FLIGHT`); \
            `too_many_orders`: too many orders being placed at once (`ORDERS_MAX_IN_FLIGHT`): refused at once, not queued. \
            Retry after `Retry-After` seconds.",
            body = ProblemDetails, content_type = PROBLEM_JSON,
            headers(("Retry-After" = String, description = "Seconds to wait."))),
        (status = 504, description = "`deadline_exceeded`: the order's deadline (`ORDER_DEADLINE_MS`, or a shorter \
            `X-Request-Timeout-Ms`) passed while it was being placed; it ended `failed` and holds no stock.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
    )
)]
#[post("/orders")]
#[tracing::instrument(skip_all)]
pub async fn create_order(
    req: HttpRequest,
    access: Access,
    saga: Saga,
    body: web::Json<CreateOrderRequest>,
) -> Result<HttpResponse, Error> {
    let key = idempotency_key(&req)?;
    let order = body.into_inner().into_new_order(&access)?;
    Ok(match saga.place(order, key).await? {
        Placed::Created(order) => HttpResponse::Created()
            .insert_header((header::LOCATION, format!("/orders/{}", order.id)))
            .json(OrderResponse::from(order)),
        Placed::Replayed(order) => HttpResponse::Ok()
            .insert_header(("idempotent-replayed", "true"))
            .json(OrderResponse::from(order)),
    })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Whose orders: required without an access token; with one, the
    /// token's subject by default. A customer's token lists only its own
    /// orders (another customer's answer an empty page); `orders:admin` any.
    #[param(value_type = CustomerId, required = false, example = "c1")]
    customer_id: Option<String>,
    /// Only orders in this status, or in any of a comma list of them
    /// (`rejected,failed`); every status when absent. Rejected and failed
    /// attempts are listed like any other order.
    // The pattern accepts what `StatusFilter::parse` does, no more, no less.
    #[param(
        pattern = "^(pending|confirmed|pending_pricing|rejected|failed|cancelled)(,(pending|confirmed|pending_pricing|rejected|failed|cancelled))*$",
        example = "confirmed"
    )]
    status: Option<String>,
    /// Where to go on from: the `next_cursor` of the page before, unchanged.
    /// Absent for the first (newest) page. Opaque; a cursor the service did
    /// not give out is refused with `invalid_request`.
    #[param(
        min_length = 34,
        max_length = 34,
        pattern = "^[A-Za-z0-9_-]{34}$",
        example = "AQAAAaISJdkAAZOkpH88fB6dKlsfPi1Maw"
    )]
    cursor: Option<String>,
    /// At most this many, newest first (1 to 200; default 50; values outside
    /// are brought into range). Any whole number that fits 32 bits unsigned.
    #[param(value_type = i64, required = false, minimum = 0, maximum = 4_294_967_295_i64, example = 20)]
    limit: Option<u32>,
}

impl ListQuery {
    /// The query for `customer`'s orders (whom the caller may list, see
    /// [`Access::customer_to_list`]).
    fn into_order_query(self, customer: CustomerId) -> Result<OrderQuery, Error> {
        let query = self;
        let mut parsed = OrderQuery::new(customer).with_limit(query.limit.unwrap_or(DEFAULT_LIMIT));
        if let Some(status) = query.status {
            parsed = parsed.with_statuses(StatusFilter::parse(&status)?);
        }
        if let Some(cursor) = query.cursor {
            parsed = parsed.after(Cursor::parse(&cursor)?);
        }
        Ok(parsed)
    }
}

/// A page of one customer's orders, newest first.
#[derive(Serialize, ToSchema)]
pub struct OrderList {
    /// How many orders this page holds.
    count: usize,
    orders: Vec<OrderResponse>,
    /// Pass as `cursor` to get the next, older page; null on the last page.
    /// Always sent; optional in the description because the contract's example omits it.
    #[schema(
        required = false,
        min_length = 34,
        max_length = 34,
        pattern = "^[A-Za-z0-9_-]{34}$"
    )]
    next_cursor: Option<String>,
}

/// A customer's orders, newest first, a page at a time.
///
/// Every attempt is listed, rejected and failed ones included: they are part of
/// the history (filter them in or out with `status`). A customer with more orders
/// than `limit` pages through them by passing each answer's `next_cursor` back as
/// `cursor` until it is null; each order shows up exactly once, and orders placed
/// meanwhile (newer than the first page) do not disturb the pages that follow.
#[utoipa::path(
    tag = "orders",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of orders; `next_cursor` leads to the next one.", body = OrderList),
        (status = 400, description = "`invalid_request`: `customer_id` is missing (without an access token) or malformed, `status` names \
            something that is not an order status, or `cursor` is not a `next_cursor` this service gave out.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 401, description = "`unauthorized`: no access token where `AUTH_REQUIRED` is on, or a bad one.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
    )
)]
#[get("/orders")]
#[tracing::instrument(skip_all)]
pub async fn list_orders(
    access: Access,
    store: web::Data<Store>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, Error> {
    let mut query = query.into_inner();
    let (customer, visible) = access.customer_to_list(query.customer_id.take().as_deref())?;
    let query = query.into_order_query(customer)?;
    if !visible {
        return Ok(HttpResponse::Ok().json(OrderList {
            count: 0,
            orders: Vec::new(),
            next_cursor: None,
        }));
    }
    let page = store.list_for_customer(&query).await?;
    let orders: Vec<OrderResponse> = page.orders.into_iter().map(OrderResponse::from).collect();
    Ok(HttpResponse::Ok().json(OrderList {
        count: orders.len(),
        orders,
        next_cursor: page.next.map(|cursor| cursor.encode()),
    }))
}

/// One order.
// Reads like inventory's `get_reservation`: the shape of every get-by-id
// handler here (path id, store lookup, 404 problem), kept whole so that each
// handler shows its route, description and errors on one screen.
#[utoipa::path(
    tag = "orders",
    params(("id" = String, Path, description = "The `order_id`.", example = "0193a4a4-7f3c-7c1e-9d2a-5b1f3e2d4c6b")),
    responses(
        (status = 200, description = "The order.", body = OrderResponse),
        (status = 401, description = "`unauthorized`: no access token where `AUTH_REQUIRED` is on, or a bad one.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 404, description = "`order_not_found`: no such order, or another customer's.",
            body = OrderProblem, content_type = PROBLEM_JSON),
    )
)]
#[get("/orders/{id}")]
#[tracing::instrument(skip_all, fields(order_id = %path))]
pub async fn get_order(
    access: Access,
    store: web::Data<Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let id = order_id(path.into_inner())?;
    let order = store
        .get(&id)
        .await?
        .filter(|order| access.may_see(&order.customer_id))
        .ok_or_else(|| Error::OrderNotFound {
            id: id.as_str().to_owned(),
        })?;
    Ok(HttpResponse::Ok().json(OrderResponse::from(order)))
}

/// Cancels an order and releases its stock; cancelling twice is harmless.
#[utoipa::path(
    tag = "orders",
    params(("id" = String, Path, description = "The `order_id`.", example = "0193a4a4-7f3c-7c1e-9d2a-5b1f3e2d4c6b")),
    responses(
        (status = 200, description = "Cancelled (`status: \"cancelled\"`).", body = OrderResponse),
        (status = 401, description = "`unauthorized`: no access token where `AUTH_REQUIRED` is on, or a bad one.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 404, description = "`order_not_found`: no such order, or another customer's.",
            body = OrderProblem, content_type = PROBLEM_JSON),
        (status = 409, description = "`order_not_cancellable`: the order holds no stock (it failed or was rejected).",
            body = OrderProblem, content_type = PROBLEM_JSON),
        (status = 503, description = "`inventory_unavailable`: the stock could not be released; retry after `Retry-After` seconds.",
            body = ProblemDetails, content_type = PROBLEM_JSON,
            headers(("Retry-After" = String, description = "Seconds to wait."))),
    )
)]
#[post("/orders/{id}/cancel")]
#[tracing::instrument(skip_all, fields(order_id = %path))]
pub async fn cancel_order(
    access: Access,
    saga: Saga,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let order = saga.cancel(&order_id(path.into_inner())?, &access).await?;
    Ok(HttpResponse::Ok().json(OrderResponse::from(order)))
}
