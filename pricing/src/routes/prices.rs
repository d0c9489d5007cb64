//! `GET /price/{sku}`, `POST /price/bulk`, `GET /prices`: reading prices, for anyone.

use actix_web::{HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use shared_http::openapi::PROBLEM_JSON;
use shared_vocabulary::lines::SkusOrItems;
use utoipa::{IntoParams, ToSchema};

use crate::domain::{MAX_QUANTITY, ParseError, PriceRules, Quantity, Quote, Sku};
use crate::error::{Error, SkuProblem};
use crate::store::Store;

/// Most skus one bulk request may ask for.
const MAX_BULK: usize = 200;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PriceQuery {
    /// Price this many units: applies the quantity tiers and adds `quantity` and `line_total`.
    #[param(minimum = 1, maximum = 100_000, example = 10)]
    quantity: Option<u64>,
}

/// The price of one sku, for one unit or, with `?quantity=n`, for n units.
#[utoipa::path(
    tag = "prices",
    params(
        ("sku" = String, Path, description = "The sku, e.g. `A001`.", example = "A001"),
        PriceQuery,
    ),
    responses(
        (status = 200, description = "The price.", body = Quote),
        (status = 400, description = "`invalid_request`: the quantity is not between 1 and 100000.",
            body = shared_http::problem::ProblemDetails, content_type = PROBLEM_JSON),
        (status = 404, description = "`price_not_found`: no price for this sku.",
            body = SkuProblem, content_type = PROBLEM_JSON),
    )
)]
#[get("/price/{sku}")]
#[tracing::instrument(skip_all, fields(sku = %path))]
pub async fn get_price(
    store: web::Data<Store>,
    rules: web::Data<PriceRules>,
    path: web::Path<String>,
    query: web::Query<PriceQuery>,
) -> Result<HttpResponse, Error> {
    let sku_text = path.into_inner();
    let not_found = || Error::PriceNotFound {
        sku: sku_text.clone(),
    };
    let sku = Sku::parse(&sku_text).map_err(|_| not_found())?;
    let quantity = query.quantity.map(Quantity::parse).transpose()?;
    let entry = store.get(&sku).await?.ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(rules.quote(&sku, &entry, quantity)))
}

/// The bulk request: skus (one unit each) or items with quantities, one of the two.
///
/// Read through [`RawBulkPriceRequest`], so that a body with both or neither
/// gets a message saying so, and a mistyped field one naming it.
#[derive(Deserialize, ToSchema)]
#[serde(untagged, try_from = "RawBulkPriceRequest")]
pub enum BulkPriceRequest {
    Skus(BulkBySkus),
    Items(BulkByItems),
}

/// One unit of each sku.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"skus": ["A001", "B001"]}))]
pub struct BulkBySkus {
    #[schema(value_type = Vec<Sku>, min_items = 1, max_items = 200)]
    skus: Vec<String>,
}

/// Each sku with its quantity.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"items": [{"sku": "A001", "quantity": 10}]}))]
pub struct BulkByItems {
    #[schema(min_items = 1, max_items = 200)]
    items: Vec<BulkItem>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkItem {
    #[schema(value_type = Sku)]
    sku: String,
    #[schema(minimum = 1, maximum = 100_000, example = 10)]
    #[serde(deserialize_with = "shared_http::validate::whole_number")]
    quantity: u64,
}

/// The body as sent, both shapes at once.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBulkPriceRequest {
    skus: Option<Vec<String>>,
    items: Option<Vec<BulkItem>>,
}

impl TryFrom<RawBulkPriceRequest> for BulkPriceRequest {
    type Error = &'static str;
    fn try_from(raw: RawBulkPriceRequest) -> Result<Self, Self::Error> {
        Ok(match SkusOrItems::choose(raw.skus, raw.items)? {
            SkusOrItems::Skus(skus) => Self::Skus(BulkBySkus { skus }),
            SkusOrItems::Items(items) => Self::Items(BulkByItems { items }),
        })
    }
}

/// The prices found, and the skus that have none.
#[derive(Serialize, ToSchema)]
pub struct BulkPriceResponse {
    prices: Vec<Quote>,
    not_found: Vec<String>,
}

impl BulkPriceRequest {
    /// The (sku, quantity) pairs asked for, validated.
    fn parse(self) -> Result<Vec<(Sku, Option<Quantity>)>, Error> {
        let wanted: Vec<(Sku, Option<Quantity>)> = match self {
            Self::Skus(BulkBySkus { skus }) => skus
                .iter()
                .map(|s| Ok((Sku::parse(s).map_err(ParseError::from)?, None)))
                .collect::<Result<_, Error>>()?,
            Self::Items(BulkByItems { items }) => items
                .iter()
                .map(|i| {
                    let sku = Sku::parse(&i.sku).map_err(ParseError::from)?;
                    Ok((sku, Some(Quantity::parse(i.quantity)?)))
                })
                .collect::<Result<_, Error>>()?,
        };
        if wanted.is_empty() || wanted.len() > MAX_BULK {
            return Err(Error::InvalidRequest(format!(
                "ask for 1 to {MAX_BULK} skus at a time"
            )));
        }
        Ok(wanted)
    }
}

/// Prices many skus at once; unknown skus are listed, not failed.
#[utoipa::path(
    tag = "prices",
    responses(
        (status = 200, description = "The prices found and the skus without one.", body = BulkPriceResponse),
        (status = 400, description = "`invalid_request`: a bad sku or quantity, or not 1 to 200 skus.",
            body = shared_http::problem::ProblemDetails, content_type = PROBLEM_JSON),
    )
)]
#[post("/price/bulk")]
#[tracing::instrument(skip_all)]
pub async fn bulk_prices(
    store: web::Data<Store>,
    rules: web::Data<PriceRules>,
    body: web::Json<BulkPriceRequest>,
) -> Result<HttpResponse, Error> {
    let wanted = body.into_inner().parse()?;
    let skus: Vec<Sku> = wanted.iter().map(|(sku, _)| sku.clone()).collect();
    let found = store.get_many(&skus).await?;
    let mut response = BulkPriceResponse {
        prices: Vec::with_capacity(wanted.len()),
        not_found: Vec::new(),
    };
    for (sku, quantity) in wanted {
        match found.get(&sku) {
            Some(entry) => response.prices.push(rules.quote(&sku, entry, quantity)),
            None => response.not_found.push(sku.as_str().to_owned()),
        }
    }
    Ok(HttpResponse::Ok().json(response))
}

/// Every price in the catalogue.
#[derive(Serialize, ToSchema)]
pub struct PriceList {
    count: usize,
    prices: Vec<Quote>,
}

/// Every price in the catalogue, for one unit.
#[utoipa::path(
    tag = "prices",
    responses((status = 200, description = "The whole catalogue.", body = PriceList))
)]
#[get("/prices")]
pub async fn list_prices(
    store: web::Data<Store>,
    rules: web::Data<PriceRules>,
) -> Result<HttpResponse, Error> {
    let prices: Vec<Quote> = store
        .all()
        .await?
        .iter()
        .map(|(sku, entry)| rules.quote(sku, entry, None))
        .collect();
    Ok(HttpResponse::Ok().json(PriceList {
        count: prices.len(),
        prices,
    }))
}

/// Keeps the documented bounds and the domain's in step.
const _: () = assert!(MAX_QUANTITY == 100_000 && MAX_BULK == 200);
