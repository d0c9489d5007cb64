//! The yardstick of `scripts/bench.sh`: bare actix-web handlers with none of
//! the services' plumbing (no middleware, store, breaker, metrics or logs).
//!
//! - `GET /items/{sku}`: a fixed item, shaped like inventory's answer.
//! - `POST /orders`: the order flow's two downstream calls and nothing else:
//!   a reservation at inventory, then a bulk quote at pricing, through one awc
//!   client per worker; then a fixed answer (502 if either call failed).
//!
//! Settings: `PORT` (default 7004), `INVENTORY_URL`, `PRICING_URL`.

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

struct Downstream {
    http: awc::Client,
    inventory: String,
    pricing: String,
}

impl Downstream {
    async fn post(&self, url: String, body: &Value) -> bool {
        match self.http.post(url).send_json(body).await {
            Ok(mut res) => res.body().await.is_ok() && res.status().is_success(),
            Err(_) => false,
        }
    }
}

async fn item(sku: web::Path<String>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "sku": sku.into_inner(), "name": "Laptop", "category": "electronics", "stock": 50
    }))
}

async fn order(downstream: web::Data<Downstream>) -> HttpResponse {
    let id = format!(
        "baseline-{}-{}",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    );
    let reservation = json!({"reservation_id": id, "lines": [{"sku": "A002", "quantity": 1}]});
    let quote = json!({"items": [{"sku": "A002", "quantity": 1}]});
    let reserved = downstream
        .post(
            format!("{}/reservations", downstream.inventory),
            &reservation,
        )
        .await;
    let priced = reserved
        && downstream
            .post(format!("{}/price/bulk", downstream.pricing), &quote)
            .await;
    if priced {
        HttpResponse::Created().json(json!({"order_id": id, "status": "confirmed"}))
    } else {
        HttpResponse::BadGateway().finish()
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let setting = |name: &str, default: &str| std::env::var(name).unwrap_or(default.to_owned());
    let port: u16 = setting("PORT", "7004").parse().unwrap_or(7004);
    let inventory = setting("INVENTORY_URL", "http://127.0.0.1:7001");
    let pricing = setting("PRICING_URL", "http://127.0.0.1:7003");
    HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(Downstream {
                http: awc::Client::default(),
                inventory: inventory.clone(),
                pricing: pricing.clone(),
            }))
            .route("/items/{sku}", web::get().to(item))
            .route("/orders", web::post().to(order))
    })
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
