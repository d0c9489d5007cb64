//! `GET /price/{sku}`, `POST /price/bulk`, `GET /prices`.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::domain::{PriceBook, Quantity, Quote, Sku};
use crate::error::Error;

/// Most skus one bulk request may ask for.
const MAX_BULK: usize = 200;

#[derive(Deserialize)]
pub struct PriceQuery {
    quantity: Option<u64>,
}

#[tracing::instrument(skip_all, fields(sku = %path))]
pub async fn get_price(
    book: web::Data<PriceBook>,
    path: web::Path<String>,
    query: web::Query<PriceQuery>,
) -> Result<HttpResponse, Error> {
    let sku_text = path.into_inner();
    let not_found = || Error::PriceNotFound {
        sku: sku_text.clone(),
    };
    let sku = Sku::parse(&sku_text).map_err(|_| not_found())?;
    let quantity = query.quantity.map(Quantity::parse).transpose()?;
    let quote = book.quote(&sku, quantity).ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(quote))
}

/// Either form of the bulk request; exactly one of the two fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkPriceRequest {
    skus: Option<Vec<String>>,
    items: Option<Vec<BulkItem>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkItem {
    sku: String,
    quantity: u64,
}

#[derive(Serialize)]
pub struct BulkPriceResponse {
    prices: Vec<Quote>,
    not_found: Vec<String>,
}

impl BulkPriceRequest {
    /// The (sku, quantity) pairs asked for, validated.
    fn parse(self) -> Result<Vec<(Sku, Option<Quantity>)>, Error> {
        let wanted: Vec<(Sku, Option<Quantity>)> = match (self.skus, self.items) {
            (Some(skus), None) => skus
                .iter()
                .map(|s| Ok((Sku::parse(s)?, None)))
                .collect::<Result<_, Error>>()?,
            (None, Some(items)) => items
                .iter()
                .map(|i| Ok((Sku::parse(&i.sku)?, Some(Quantity::parse(i.quantity)?))))
                .collect::<Result<_, Error>>()?,
            _ => {
                return Err(Error::InvalidRequest(
                    "send either \"skus\" or \"items\", not both and not neither".into(),
                ));
            }
        };
        if wanted.is_empty() || wanted.len() > MAX_BULK {
            return Err(Error::InvalidRequest(format!(
                "ask for 1 to {MAX_BULK} skus at a time"
            )));
        }
        Ok(wanted)
    }
}

#[tracing::instrument(skip_all)]
pub async fn bulk_prices(
    book: web::Data<PriceBook>,
    body: web::Json<BulkPriceRequest>,
) -> Result<HttpResponse, Error> {
    let wanted = body.into_inner().parse()?;
    let mut response = BulkPriceResponse {
        prices: Vec::with_capacity(wanted.len()),
        not_found: Vec::new(),
    };
    for (sku, quantity) in wanted {
        match book.quote(&sku, quantity) {
            Some(quote) => response.prices.push(quote),
            None => response.not_found.push(sku.as_str().to_owned()),
        }
    }
    Ok(HttpResponse::Ok().json(response))
}

pub async fn list_prices(book: web::Data<PriceBook>) -> HttpResponse {
    let prices = book.all();
    HttpResponse::Ok().json(json!({ "count": prices.len(), "prices": prices }))
}
