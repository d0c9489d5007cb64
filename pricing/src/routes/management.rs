//! Setting prices: `PUT /price/{sku}` and `GET /price/{sku}/history`.
//! Operators only (`pricing:write`); every change is recorded with who made
//! it and when.

use actix_web::{HttpResponse, get, put, web};
use serde::{Deserialize, Serialize};
use shared_auth::Authorized;
use shared_http::openapi::PROBLEM_JSON;
use shared_http::paging::HistoryQuery;
use shared_http::problem::ProblemDetails;
use shared_http::timestamp::{now_ms, to_rfc3339};
use shared_vocabulary::money::Money;
use utoipa::ToSchema;

use crate::domain::{MAX_BASE_CENTS, MAX_TIERS, ParseError, PriceEntry, PriceRules, Quote, Sku};
use crate::error::{Error, SkuProblem};
use crate::events;
use crate::scopes::WritePrices;
use crate::store::{PriceChange, PutOutcome, Store};

/// Keeps the documented bounds and the domain's in step.
const _: () = assert!(MAX_BASE_CENTS == 100_000_000 && MAX_TIERS == 10);

/// A sku's price: base, own discount and, optionally, its own quantity tiers.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"base_price": 999.99, "discount_percent": 10,
                          "tiers": [{"min_quantity": 10, "discount_percent": 15}]}))]
pub struct PutPriceRequest {
    /// Above 0, at most 1000000.00, with at most 2 decimals.
    #[schema(exclusive_minimum = 0, maximum = 1_000_000, example = 999.99)]
    base_price: f64,
    #[schema(minimum = 0, maximum = 100, example = 10)]
    #[serde(deserialize_with = "shared_http::validate::whole_number")]
    discount_percent: u64,
    /// The sku's own quantity tiers (at most 10, `min_quantity` from 2 and
    /// strictly increasing); `[]` for none. Left out or `null`: the
    /// catalogue's tiers.
    #[serde(default)]
    #[schema(max_items = 10, nullable = true)]
    tiers: Option<Vec<TierIn>>,
}

/// From `min_quantity` units on, `discount_percent` off (unless the price's own discount is larger).
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Tier)]
pub struct TierIn {
    #[schema(minimum = 2, maximum = 100_000, example = 10)]
    #[serde(deserialize_with = "shared_http::validate::whole_number")]
    min_quantity: u64,
    #[schema(minimum = 0, maximum = 100, example = 5)]
    #[serde(deserialize_with = "shared_http::validate::whole_number")]
    discount_percent: u64,
}

impl TryFrom<PutPriceRequest> for PriceEntry {
    type Error = Error;
    fn try_from(req: PutPriceRequest) -> Result<Self, Error> {
        let tiers: Option<Vec<(u64, u64)>> = req.tiers.map(|tiers| {
            tiers
                .iter()
                .map(|t| (t.min_quantity, t.discount_percent))
                .collect()
        });
        Ok(PriceEntry::parse(
            req.base_price,
            req.discount_percent,
            tiers.as_deref(),
        )?)
    }
}

/// Sets a sku's price; `GET /price/{sku}` and `POST /price/bulk` answer with it at once.
#[utoipa::path(
    tag = "prices",
    security(("bearer_token" = [])),
    params(("sku" = String, Path, description = "The sku, e.g. `A001`.", example = "A001")),
    responses(
        (status = 200, description = "The new price for one unit (also when the sku had none: the contract answers 200 either way).", body = Quote),
        (status = 400, description = "`invalid_request`: a bad sku, base price, discount or tier.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 401, description = "`unauthorized`: no valid bearer token where one is needed.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 403, description = "`forbidden`: the token lacks `pricing:write`.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
    )
)]
#[put("/price/{sku}")]
#[tracing::instrument(skip_all, fields(sku = %path))]
pub async fn put_price(
    auth: Authorized<WritePrices>,
    store: web::Data<Store>,
    rules: web::Data<PriceRules>,
    path: web::Path<String>,
    body: web::Json<PutPriceRequest>,
) -> Result<HttpResponse, Error> {
    let sku = Sku::parse(&path).map_err(ParseError::from)?;
    let entry = PriceEntry::try_from(body.into_inner())?;
    let actor = auth.caller.actor();
    let event = |previous: Option<&PriceEntry>| {
        events::price_changed(&rules, &sku, &entry, previous, &actor)
    };
    let outcome = store.put(&sku, &entry, &actor, now_ms(), event).await?;
    let created = matches!(outcome, PutOutcome::Created);
    tracing::info!(actor = %actor, created, base_cents = entry.base.cents(), "price set");
    Ok(HttpResponse::Ok().json(rules.quote(&sku, &entry, None)))
}

/// One recorded price change: who, when, and the price set.
#[derive(Serialize, ToSchema)]
#[schema(as = PriceChange)]
pub struct PriceChangeResponse {
    #[schema(format = DateTime)]
    at: String,
    /// The token's subject; `anonymous` with auth off.
    #[schema(example = "alice")]
    actor: String,
    base_price: Money,
    #[schema(minimum = 0, maximum = 100)]
    discount_percent: u8,
    /// The sku's own tiers; null when it uses the catalogue's.
    tiers: Option<Vec<TierIn>>,
}

impl From<PriceChange> for PriceChangeResponse {
    fn from(c: PriceChange) -> Self {
        Self {
            at: to_rfc3339(c.at),
            actor: c.actor,
            base_price: c.entry.base,
            discount_percent: c.entry.discount_percent,
            tiers: c.entry.tiers.map(|tiers| {
                tiers
                    .iter()
                    .map(|t| TierIn {
                        min_quantity: u64::from(t.min_quantity),
                        discount_percent: u64::from(t.discount_percent),
                    })
                    .collect()
            }),
        }
    }
}

/// A sku's price changes, newest first.
#[derive(Serialize, ToSchema)]
pub struct PriceHistory {
    sku: Sku,
    changes: Vec<PriceChangeResponse>,
    /// How many changes are listed here.
    count: usize,
}

/// Who set a sku's price and when, newest first (prices seeded from the
/// catalogue file start with no history).
#[utoipa::path(
    tag = "prices",
    security(("bearer_token" = [])),
    params(("sku" = String, Path, description = "The sku, e.g. `A001`.", example = "A001"), HistoryQuery),
    responses(
        (status = 200, description = "The changes, newest first.", body = PriceHistory),
        (status = 400, description = "`invalid_request`: `limit` is not between 1 and 200.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 401, description = "`unauthorized`: no valid bearer token where one is needed.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 403, description = "`forbidden`: the token lacks `pricing:write`.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 404, description = "`price_not_found`: no price for this sku.",
            body = SkuProblem, content_type = PROBLEM_JSON),
    )
)]
#[get("/price/{sku}/history")]
#[tracing::instrument(skip_all, fields(sku = %path))]
pub async fn price_history(
    _: Authorized<WritePrices>,
    store: web::Data<Store>,
    path: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, Error> {
    let raw = path.into_inner();
    let not_found = || Error::PriceNotFound { sku: raw.clone() };
    let sku = Sku::parse(&raw).map_err(|_| not_found())?;
    let limit = query.limit()?;
    let changes = store.history(&sku, limit).await?.ok_or_else(not_found)?;
    let changes: Vec<PriceChangeResponse> = changes.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(PriceHistory {
        sku,
        count: changes.len(),
        changes,
    }))
}
