//! The pricing service's bulk endpoint, as the order flow uses it.

use actix_web::http::Method;
use serde::{Deserialize, Serialize};
use shared_http::request_id::RequestId;
use shared_vocabulary::money::Money;

use super::{Call, CallError, Downstream};
use crate::domain::{Lines, Sku, UnitPrice};

#[derive(Clone)]
pub struct PricingClient(Downstream);

#[derive(Serialize)]
struct BulkRequest<'a> {
    items: Vec<BulkItem<'a>>,
}

#[derive(Serialize)]
struct BulkItem<'a> {
    sku: &'a str,
    quantity: u32,
}

#[derive(Deserialize)]
struct BulkResponse {
    prices: Vec<PriceOut>,
}

/// One quoted price (the fields the order flow reads).
#[derive(Debug, Clone, Deserialize)]
pub struct PriceOut {
    pub sku: Sku,
    /// Unit price after discount, at the quantity asked for.
    pub final_price: Money,
    pub discount_percent: u8,
    pub currency: String,
}

impl PricingClient {
    pub fn new(downstream: Downstream) -> Self {
        Self(downstream)
    }

    /// Quotes every line at its quantity; skus without a price are left out.
    ///
    /// # Errors
    /// See [`CallError`].
    pub async fn quote(
        &self,
        request_id: &RequestId,
        lines: &Lines,
        call: Call,
    ) -> Result<Vec<PriceOut>, CallError> {
        let body = BulkRequest {
            items: lines
                .iter()
                .map(|(sku, quantity)| BulkItem {
                    sku: sku.as_str(),
                    quantity: quantity.get(),
                })
                .collect(),
        };
        let (_, response): (_, BulkResponse) = self
            .0
            .send_for(Method::POST, "/price/bulk", Some(&body), request_id, call)
            .await?;
        Ok(response.prices)
    }
}

impl From<PriceOut> for UnitPrice {
    fn from(quote: PriceOut) -> Self {
        Self {
            unit: quote.final_price,
            discount_percent: quote.discount_percent,
            currency: quote.currency,
        }
    }
}
