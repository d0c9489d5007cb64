//! Starts the inventory service on a free port and a fresh database.

use std::time::Duration;

use inventory::config::Config;
use inventory::domain::Catalog;
use serde_json::{Value, json};
use shared_server::ServerConfig;
use shared_testkit::{Spawned, TestClient, TestDatabase, TestResponse, init_tracing, spawn};

pub struct TestApp {
    pub server: Spawned,
    pub db: TestDatabase,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Inventory's settings for tests: a free port, the shipped catalogue, `db`.
pub fn test_config(db: &TestDatabase) -> Config {
    Config {
        server: ServerConfig::for_tests(),
        database: db.config.clone(),
        catalog: Catalog::shipped(),
        reservation_ttl: Duration::from_secs(60),
        item_cache_ttl: std::time::Duration::from_millis(500),
        service_token: None,
        events: shared_events::EventsConfig::off(),
    }
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    init_tracing();
    let db = TestDatabase::create("inventory").await;
    let mut config = test_config(&db);
    adjust(&mut config);
    let server = spawn(
        inventory::startup::build(config)
            .await
            .expect("inventory starts"),
    );
    TestApp { server, db }
}

impl TestApp {
    pub async fn get(&self, path: &str) -> TestResponse {
        self.server.client.get(path).await
    }

    pub async fn stock(&self, sku: &str) -> i64 {
        let res = self.get(&format!("/items/{sku}")).await;
        res.assert_status(200);
        res.body["stock"].as_i64().expect("stock is a number")
    }

    pub async fn reserve(&self, id: &str, lines: &[(&str, u64)]) -> TestResponse {
        let lines: Vec<Value> = lines
            .iter()
            .map(|(sku, quantity)| json!({"sku": sku, "quantity": quantity}))
            .collect();
        self.server
            .client
            .post_json(
                "/reservations",
                &json!({"reservation_id": id, "lines": lines}),
            )
            .await
    }

    pub async fn confirm(&self, id: &str) -> TestResponse {
        self.server
            .client
            .post_json(&format!("/reservations/{id}/confirm"), &json!({}))
            .await
    }

    /// `POST /reservation-confirmations` for `ids`.
    pub async fn confirm_all(&self, ids: &[&str]) -> TestResponse {
        self.server
            .client
            .post_json(
                "/reservation-confirmations",
                &json!({ "reservation_ids": ids }),
            )
            .await
    }

    /// `PUT /items/{sku}` as `client` (the app's own client is anonymous).
    pub async fn put_item(&self, client: &TestClient, sku: &str, body: &Value) -> TestResponse {
        client.put_json(&format!("/items/{sku}"), body).await
    }

    /// `POST /items/{sku}/stock` as `client`.
    pub async fn adjust(&self, client: &TestClient, sku: &str, delta: i64) -> TestResponse {
        client
            .post_json(
                &format!("/items/{sku}/stock"),
                &json!({"delta": delta, "reason": "test adjustment"}),
            )
            .await
    }

    /// `GET /items/{sku}/history` as `client`.
    pub async fn history(&self, client: &TestClient, sku: &str) -> TestResponse {
        client.get(&format!("/items/{sku}/history")).await
    }

    pub async fn release(&self, id: &str) -> TestResponse {
        self.server
            .client
            .delete(&format!("/reservations/{id}"))
            .await
    }
}
