//! `POST /orders`, `GET /orders`, `GET /orders/{id}`, `POST /orders/{id}/cancel`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use shared::money::Money;
use shared::request_id::RequestId;
use shared::timestamp::to_rfc3339;

use crate::clients::{InventoryClient, PricingClient};
use crate::domain::{IdempotencyKey, NewOrder, Order, OrderStatus, ParseError, PricingSource};
use crate::error::Error;
use crate::saga::{Placed, Saga};
use crate::store::Store;

/// `{"customer_id", "skus": [...]}` (one unit each) or `{"customer_id", "items": [{sku, quantity}]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    customer_id: String,
    skus: Option<Vec<String>>,
    items: Option<Vec<ItemIn>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemIn {
    sku: String,
    quantity: u64,
}

impl TryFrom<CreateOrderRequest> for NewOrder {
    type Error = ParseError;
    fn try_from(req: CreateOrderRequest) -> Result<Self, ParseError> {
        let lines: Vec<(String, u64)> = match (req.skus, req.items) {
            (Some(skus), None) => skus.into_iter().map(|s| (s, 1)).collect(),
            (None, Some(items)) => items.into_iter().map(|i| (i.sku, i.quantity)).collect(),
            _ => return Err(ParseError::LinesShape),
        };
        NewOrder::parse(&req.customer_id, &lines)
    }
}

#[derive(Serialize)]
pub struct OrderResponse {
    order_id: String,
    customer_id: String,
    status: OrderStatus,
    items: Vec<OrderItemResponse>,
    /// Null while any line is unpriced.
    total: Option<Money>,
    currency: Option<String>,
    pricing: Option<PricingSource>,
    created_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_reason: Option<String>,
}

#[derive(Serialize)]
pub struct OrderItemResponse {
    sku: String,
    name: Option<String>,
    quantity: u32,
    unit_price: Option<Money>,
    discount_percent: Option<u8>,
    line_total: Option<Money>,
}

impl From<Order> for OrderResponse {
    fn from(o: Order) -> Self {
        Self {
            order_id: o.id,
            customer_id: o.customer_id,
            status: o.status,
            items: o
                .lines
                .into_iter()
                .map(|l| OrderItemResponse {
                    sku: l.sku,
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

fn idempotency_key(req: &HttpRequest) -> Result<Option<IdempotencyKey>, Error> {
    match req.headers().get("idempotency-key") {
        None => Ok(None),
        Some(value) => {
            let text = value.to_str().map_err(|_| ParseError::IdempotencyKey)?;
            Ok(Some(IdempotencyKey::parse(text)?))
        }
    }
}

#[tracing::instrument(skip_all)]
pub async fn create_order(
    req: HttpRequest,
    request_id: RequestId,
    store: web::Data<Store>,
    inventory: web::Data<InventoryClient>,
    pricing: web::Data<PricingClient>,
    body: web::Json<CreateOrderRequest>,
) -> Result<HttpResponse, Error> {
    let key = idempotency_key(&req)?;
    let order = NewOrder::try_from(body.into_inner())?;
    let saga = Saga {
        store: &store,
        inventory: &inventory,
        pricing: &pricing,
        request_id: &request_id,
    };
    Ok(match saga.place(order, key).await? {
        Placed::Created(order) => HttpResponse::Created()
            .insert_header((header::LOCATION, format!("/orders/{}", order.id)))
            .json(OrderResponse::from(order)),
        Placed::Replayed(order) => HttpResponse::Ok()
            .insert_header(("idempotent-replayed", "true"))
            .json(OrderResponse::from(order)),
    })
}

#[derive(Deserialize)]
pub struct ListQuery {
    customer_id: Option<String>,
    limit: Option<u32>,
}

#[tracing::instrument(skip_all)]
pub async fn list_orders(
    store: web::Data<Store>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, Error> {
    let query = query.into_inner();
    let customer_id = query
        .customer_id
        .ok_or_else(|| Error::InvalidRequest("customer_id is required".into()))?;
    let customer_id = crate::domain::CustomerId::parse(&customer_id)?;
    let limit = query.limit.unwrap_or(50).clamp(1, 200);
    let orders: Vec<OrderResponse> = store
        .list_for_customer(customer_id.as_str(), limit)
        .await?
        .into_iter()
        .map(OrderResponse::from)
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "count": orders.len(), "orders": orders })))
}

#[tracing::instrument(skip_all, fields(order_id = %path))]
pub async fn get_order(
    store: web::Data<Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let id = path.into_inner();
    let order = store.get(&id).await?.ok_or(Error::OrderNotFound { id })?;
    Ok(HttpResponse::Ok().json(OrderResponse::from(order)))
}

#[tracing::instrument(skip_all, fields(order_id = %path))]
pub async fn cancel_order(
    request_id: RequestId,
    store: web::Data<Store>,
    inventory: web::Data<InventoryClient>,
    pricing: web::Data<PricingClient>,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let saga = Saga {
        store: &store,
        inventory: &inventory,
        pricing: &pricing,
        request_id: &request_id,
    };
    let order = saga.cancel(&path).await?;
    Ok(HttpResponse::Ok().json(OrderResponse::from(order)))
}
