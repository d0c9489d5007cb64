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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A newer pricing may add fields to its answers (additive changes
    /// only): this release reads what it knows and ignores the rest.
    #[test]
    fn answers_with_fields_this_release_does_not_know_are_read() {
        let answer: BulkResponse = serde_json::from_value(json!({
            "prices": [{"sku": "A001", "base_price": 999.99, "discount_percent": 10,
                        "final_price": 899.99, "currency": "USD", "discounted": true,
                        "quantity": 1, "line_total": 899.99, "tax_included": false}],
            "not_found": ["Z999"],
            "price_list": "2027-spring"
        }))
        .expect("a quote with extra fields");
        let price = UnitPrice::from(answer.prices[0].clone());
        assert_eq!(price.unit, Money::from_decimal(899.99).expect("an amount"));
        assert_eq!(price.discount_percent, 10);
    }
}
