//! Catalogue management: `PUT /items/{sku}`, `POST /items/{sku}/stock`,
//! `GET /items/{sku}/history`. Operators only (`inventory:write`); every
//! change is recorded with who made it and when.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, put, web};
use serde::{Deserialize, Serialize};
use shared_auth::Authorized;
use shared_http::openapi::PROBLEM_JSON;
use shared_http::paging::HistoryQuery;
use shared_http::problem::ProblemDetails;
use shared_http::timestamp::{now_ms, to_rfc3339};
use utoipa::ToSchema;

use crate::domain::{
    Category, ChangeKind, Item, ItemChange, ItemDetails, ItemName, MAX_DELTA, MAX_NAME, MAX_REASON,
    ParseError, Sku, StockAdjustment,
};
use crate::error::{Error, SkuProblem, StockProblem};
use crate::events;
use crate::metrics::InventoryMetrics;
use crate::scopes::WriteCatalogue;
use crate::store::{AdjustOutcome, PutItemOutcome, Store};

/// Keeps the documented bounds and the domain's in step.
const _: () = assert!(MAX_NAME == 100 && MAX_REASON == 200 && MAX_DELTA == 1_000_000);

/// A sku in a management path: malformed is a bad request here (it is what
/// the caller wants to create), not a missing item.
fn sku_in_path(raw: &str) -> Result<Sku, Error> {
    Ok(Sku::parse(raw).map_err(ParseError::from)?)
}

/// What an item is called and where it belongs.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Laptop", "category": "electronics"}))]
pub struct PutItemRequest {
    /// 1-100 characters, not blank, no control characters.
    #[schema(min_length = 1, max_length = 100, example = "Laptop")]
    name: String,
    /// A lower-case identifier like the shipped ones (`electronics`, `home-office`).
    #[schema(pattern = "^[a-z][a-z0-9_-]{0,31}$", example = "electronics")]
    category: String,
}

impl TryFrom<PutItemRequest> for ItemDetails {
    type Error = Error;
    fn try_from(req: PutItemRequest) -> Result<Self, Error> {
        Ok(ItemDetails {
            name: ItemName::parse(&req.name)?,
            category: Category::parse(&req.category)?,
        })
    }
}

/// Creates an item (stock 0) or renames and recategorises it.
#[utoipa::path(
    tag = "catalogue",
    security(("bearer_token" = [])),
    params(("sku" = String, Path, description = "The item's sku.", example = "A001")),
    responses(
        (status = 201, description = "Created, with stock 0.", body = Item),
        (status = 200, description = "Renamed or recategorised; stock unchanged.", body = Item),
        (status = 400, description = "`invalid_request`: a bad sku, name or category.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 401, description = "`unauthorized`: no valid bearer token where one is needed.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 403, description = "`forbidden`: the token lacks `inventory:write`.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
    )
)]
#[put("/items/{sku}")]
#[tracing::instrument(skip_all, fields(sku = %path))]
pub async fn put_item(
    auth: Authorized<WriteCatalogue>,
    store: web::Data<Store>,
    path: web::Path<String>,
    body: web::Json<PutItemRequest>,
) -> Result<HttpResponse, Error> {
    let sku = sku_in_path(&path)?;
    let details = ItemDetails::try_from(body.into_inner())?;
    let actor = auth.caller.actor();
    let event = |item: &Item, created| events::item_saved(item, created, &actor);
    let (status, item) = match store
        .put_item(&sku, &details, &actor, now_ms(), event)
        .await?
    {
        PutItemOutcome::Created(item) => (StatusCode::CREATED, item),
        PutItemOutcome::Updated(item) => (StatusCode::OK, item),
    };
    tracing::info!(actor = %actor, created = status == StatusCode::CREATED, "item saved");
    Ok(HttpResponse::build(status).json(item))
}

/// Stock to add (positive) or take away (negative), and why.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"delta": 25, "reason": "delivery 2026-11-27"}))]
pub struct AdjustStockRequest {
    /// Non-zero, at most 1000000 either way.
    #[schema(minimum = -1_000_000, maximum = 1_000_000, example = 25)]
    delta: i64,
    /// 1-200 characters, not blank, no control characters.
    #[schema(min_length = 1, max_length = 200, example = "delivery 2026-11-27")]
    reason: String,
}

/// Adds or removes stock; never leaves less than nothing to order.
#[utoipa::path(
    tag = "catalogue",
    security(("bearer_token" = [])),
    params(("sku" = String, Path, description = "The item's sku.", example = "A001")),
    responses(
        (status = 200, description = "Adjusted: the item with its new stock.", body = Item),
        (status = 400, description = "`invalid_request`: a zero or oversized delta, or a bad reason.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 401, description = "`unauthorized`: no valid bearer token where one is needed.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 403, description = "`forbidden`: the token lacks `inventory:write`.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 404, description = "`item_not_found`: no item has this sku.",
            body = SkuProblem, content_type = PROBLEM_JSON),
        (status = 409, description = "`insufficient_stock`: it would leave less than nothing to order \
            (stock already excludes what is reserved); nothing changed.",
            body = StockProblem, content_type = PROBLEM_JSON),
    )
)]
#[post("/items/{sku}/stock")]
#[tracing::instrument(skip_all, fields(sku = %path))]
pub async fn adjust_stock(
    auth: Authorized<WriteCatalogue>,
    store: web::Data<Store>,
    metrics: web::Data<InventoryMetrics>,
    path: web::Path<String>,
    body: web::Json<AdjustStockRequest>,
) -> Result<HttpResponse, Error> {
    let raw = path.into_inner();
    let not_found = || Error::ItemNotFound { sku: raw.clone() };
    let sku = Sku::parse(&raw).map_err(|_| not_found())?;
    let adjustment = StockAdjustment::parse(body.delta, &body.reason)?;
    let actor = auth.caller.actor();
    match store
        .adjust_stock(&sku, &adjustment, &actor, now_ms(), |item| {
            events::stock_adjusted(item, &adjustment, &actor)
        })
        .await?
    {
        AdjustOutcome::Adjusted(item) => {
            metrics.stock_adjusted(adjustment.direction());
            tracing::info!(actor = %actor, delta = adjustment.delta(), stock = item.stock, "stock adjusted");
            Ok(HttpResponse::Ok().json(item))
        }
        AdjustOutcome::Insufficient(item) => Err(Error::StockWouldGoNegative {
            sku,
            delta: adjustment.delta(),
            stock: item.stock,
        }),
        AdjustOutcome::NotFound => Err(not_found()),
    }
}

/// One recorded change: who, when, and what it did.
#[derive(Serialize, ToSchema)]
#[schema(as = ItemChange)]
pub struct ItemChangeResponse {
    #[schema(format = DateTime)]
    at: String,
    /// The token's subject; `anonymous` with auth off, `service` for `SERVICE_TOKEN`.
    #[schema(example = "alice")]
    actor: String,
    kind: ChangeKind,
    /// `stock` changes: what was added (or taken, when negative).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    delta: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    reason: Option<String>,
    /// `stock` changes: what could still be ordered afterwards.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, minimum = 0)]
    stock_after: Option<i64>,
    /// `created` and `updated`: the name and category set.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    category: Option<String>,
}

impl From<ItemChange> for ItemChangeResponse {
    fn from(c: ItemChange) -> Self {
        Self {
            at: to_rfc3339(c.at),
            actor: c.actor,
            kind: c.kind,
            delta: c.delta,
            reason: c.reason,
            stock_after: c.stock_after,
            name: c.name,
            category: c.category,
        }
    }
}

/// An item's changes, newest first.
#[derive(Serialize, ToSchema)]
pub struct ItemHistory {
    sku: Sku,
    changes: Vec<ItemChangeResponse>,
    /// How many changes are listed here.
    count: usize,
}

/// Who changed an item and when, newest first (items seeded from the
/// catalogue file start with no history).
#[utoipa::path(
    tag = "catalogue",
    security(("bearer_token" = [])),
    params(("sku" = String, Path, description = "The item's sku.", example = "A001"), HistoryQuery),
    responses(
        (status = 200, description = "The changes, newest first.", body = ItemHistory),
        (status = 400, description = "`invalid_request`: `limit` is not between 1 and 200.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 401, description = "`unauthorized`: no valid bearer token where one is needed.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 403, description = "`forbidden`: the token lacks `inventory:write`.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 404, description = "`item_not_found`: no item has this sku.",
            body = SkuProblem, content_type = PROBLEM_JSON),
    )
)]
#[get("/items/{sku}/history")]
#[tracing::instrument(skip_all, fields(sku = %path))]
pub async fn item_history(
    _: Authorized<WriteCatalogue>,
    store: web::Data<Store>,
    path: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, Error> {
    let raw = path.into_inner();
    let not_found = || Error::ItemNotFound { sku: raw.clone() };
    let sku = Sku::parse(&raw).map_err(|_| not_found())?;
    let limit = query.limit()?;
    let changes = store
        .item_history(&sku, limit)
        .await?
        .ok_or_else(not_found)?;
    let changes: Vec<ItemChangeResponse> = changes.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(ItemHistory {
        sku,
        count: changes.len(),
        changes,
    }))
}
