//! Starts a whole stack (inventory, pricing, order) on free ports.
//!
//! Inventory and pricing can be stopped and started again on the same port
//! (and, for inventory, the same database), which is how the tests take a
//! dependency down and bring it back. The order service's breakers run on a
//! [`ManualClock`] so that tests move time instead of sleeping.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use shared_resilience::breaker::{BreakerConfig, ManualClock};
use shared_server::ServerConfig;
use shared_testkit::{Spawned, TestClient, TestDatabase, TestResponse, init_tracing, spawn};

use crate::proxy::{Fault, Proxy};

pub struct Stack {
    pub order: Spawned,
    /// Between the order service and inventory, when the test asked for one.
    pub proxy: Option<Proxy>,
    order_config: order::config::Config,
    pub inventory: Option<Spawned>,
    pub pricing: Option<Spawned>,
    pub clock: ManualClock,
    inventory_config: inventory::config::Config,
    pricing_config: pricing::config::Config,
    /// Talks to inventory even while it is down (requests then fail).
    pub inventory_client: TestClient,
    _dbs: Vec<TestDatabase>,
}

/// Every setting of the three services, before they start.
pub struct StackConfig {
    pub order: order::config::Config,
    pub inventory: inventory::config::Config,
    pub pricing: pricing::config::Config,
    /// Put a [`Proxy`] between order and inventory: its plan of faults, then
    /// what it does once the plan is used up.
    pub inventory_proxy: Option<(Vec<Fault>, Fault)>,
}

pub async fn spawn_stack() -> Stack {
    spawn_stack_with(|_| {}).await
}

pub async fn spawn_stack_with(adjust: impl FnOnce(&mut StackConfig)) -> Stack {
    init_tracing();
    let inventory_db = TestDatabase::create("inventory").await;
    let order_db = TestDatabase::create("order").await;
    let pricing_db = TestDatabase::create("pricing").await;
    let mut config = StackConfig {
        inventory: inventory::config::Config {
            server: ServerConfig::for_tests(),
            database: inventory_db.config.clone(),
            catalog: inventory::domain::Catalog::shipped(),
            reservation_ttl: Duration::from_secs(60),
            item_cache_ttl: std::time::Duration::from_millis(500),
            service_token: None,
            events: shared_events::EventsConfig::off(),
        },
        pricing: pricing::config::Config {
            server: ServerConfig::for_tests(),
            database: pricing_db.config.clone(),
            price_book: pricing::domain::PriceBook::shipped(),
            events: shared_events::EventsConfig::off(),
        },
        order: order::config::Config {
            server: ServerConfig::for_tests(),
            database: order_db.config.clone(),
            inventory_url: String::new(),
            pricing_url: String::new(),
            request_timeout: Duration::from_millis(1000),
            breaker: BreakerConfig {
                failure_threshold: 3,
                reset_timeout: Duration::from_secs(30),
            },
            service_token: None,
            reservation_ttl: Duration::from_secs(60),
            events: shared_events::EventsConfig::off(),
            calls: order::config::CallConfig::default(),
        },
        inventory_proxy: None,
    };
    adjust(&mut config);

    let inventory = start_inventory(config.inventory.clone()).await;
    let pricing = start_pricing(config.pricing.clone()).await;
    // Later restarts reuse these ports.
    config.inventory.server.port = inventory.port;
    config.pricing.server.port = pricing.port;
    config.order.inventory_url = format!("http://127.0.0.1:{}", inventory.port);
    let proxy = match &config.inventory_proxy {
        Some((plan, then)) => Some(Proxy::start(&config.order.inventory_url, plan, *then).await),
        None => None,
    };
    if let Some(proxy) = &proxy {
        config.order.inventory_url = proxy.url.clone();
    }
    config.order.pricing_url = format!("http://127.0.0.1:{}", pricing.port);

    let clock = ManualClock::default();
    let order = start_order(config.order.clone(), &clock).await;
    config.order.server.port = order.port;
    Stack {
        order,
        proxy,
        order_config: config.order,
        inventory_client: inventory.client.clone(),
        inventory: Some(inventory),
        pricing: Some(pricing),
        clock,
        inventory_config: config.inventory,
        pricing_config: config.pricing,
        _dbs: vec![inventory_db, order_db, pricing_db],
    }
}

async fn start_order(config: order::config::Config, clock: &ManualClock) -> Spawned {
    let server = order::startup::build_with_clock(config, Arc::new(clock.clone()))
        .await
        .expect("order starts");
    spawn(server)
}

async fn start_inventory(config: inventory::config::Config) -> Spawned {
    spawn(
        inventory::startup::build(config)
            .await
            .expect("inventory starts"),
    )
}

async fn start_pricing(config: pricing::config::Config) -> Spawned {
    spawn(
        pricing::startup::build(config)
            .await
            .expect("pricing starts"),
    )
}

/// An order body in the `items` form.
pub fn order_body(customer: &str, items: &[(&str, u64)]) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|(sku, quantity)| json!({"sku": sku, "quantity": quantity}))
        .collect();
    json!({"customer_id": customer, "items": items})
}

impl Stack {
    pub async fn place(&self, customer: &str, items: &[(&str, u64)]) -> TestResponse {
        self.order
            .client
            .post_json("/orders", &order_body(customer, items))
            .await
    }

    pub async fn place_with_key(&self, key: &str, body: &Value) -> TestResponse {
        self.post_order(("idempotency-key", key), body).await
    }

    /// [`Stack::place`] with `X-Request-Timeout-Ms: timeout_ms`.
    pub async fn place_within(&self, timeout_ms: &str, items: &[(&str, u64)]) -> TestResponse {
        let body = order_body("c1", items);
        self.post_order(("x-request-timeout-ms", timeout_ms), &body)
            .await
    }

    /// `POST /orders` with `body` and one more header.
    async fn post_order(&self, header: (&str, &str), body: &Value) -> TestResponse {
        self.order
            .client
            .send(
                actix_web::http::Method::POST,
                "/orders",
                &[("content-type", "application/json"), header],
                Some(body.to_string().into_bytes()),
            )
            .await
    }

    /// The value of one series (`name{labels}`) of the order service's metrics, 0 if absent.
    pub async fn order_metric(&self, series: &str) -> f64 {
        metric(&self.order.client, series).await
    }

    pub async fn stock(&self, sku: &str) -> i64 {
        let res = self.inventory_client.get(&format!("/items/{sku}")).await;
        res.assert_status(200);
        res.body["stock"].as_i64().expect("stock")
    }

    /// The `/health` entry of one of the order service's dependencies.
    pub async fn dependency(&self, name: &str) -> Value {
        let res = self.order.client.get("/health").await;
        res.assert_status(200);
        res.body["checks"][name].clone()
    }

    pub async fn breaker_state(&self, name: &str) -> String {
        self.dependency(name).await["breaker"]["state"]
            .as_str()
            .expect("breaker state")
            .to_owned()
    }

    pub async fn stop_pricing(&mut self) {
        let mut pricing = self.pricing.take().expect("pricing is running");
        pricing.stop().await;
    }

    pub async fn start_pricing(&mut self) {
        assert!(self.pricing.is_none(), "pricing already running");
        self.pricing = Some(start_pricing(self.pricing_config.clone()).await);
    }

    /// Stops the order service and starts it again: same port, same database.
    pub async fn restart_order(&mut self) {
        self.order.stop().await;
        self.order = start_order(self.order_config.clone(), &self.clock).await;
    }

    /// Another order process on the same database, calling `inventory_url`.
    pub async fn order_replica(&self, inventory_url: String) -> Spawned {
        let mut config = self.order_config.clone();
        config.server.port = 0;
        config.inventory_url = inventory_url;
        start_order(config, &self.clock).await
    }

    /// Another inventory process on the same database.
    pub async fn inventory_replica(&self) -> Spawned {
        self.inventory_replica_with(|_| {}).await
    }

    /// [`Stack::inventory_replica`] with its settings adjusted.
    pub async fn inventory_replica_with(
        &self,
        adjust: impl FnOnce(&mut inventory::config::Config),
    ) -> Spawned {
        let mut config = self.inventory_config.clone();
        config.server.port = 0;
        adjust(&mut config);
        start_inventory(config).await
    }

    /// Another order process on the same database (and clock), its settings adjusted.
    pub async fn order_replica_with(
        &self,
        adjust: impl FnOnce(&mut order::config::Config),
    ) -> Spawned {
        let mut config = self.order_config.clone();
        config.server.port = 0;
        adjust(&mut config);
        start_order(config, &self.clock).await
    }

    pub fn order_config(&self) -> &order::config::Config {
        &self.order_config
    }

    pub async fn stop_inventory(&mut self) {
        let mut inventory = self.inventory.take().expect("inventory is running");
        inventory.stop().await;
    }

    pub async fn start_inventory(&mut self) {
        assert!(self.inventory.is_none(), "inventory already running");
        self.inventory = Some(start_inventory(self.inventory_config.clone()).await);
    }
}

/// The value of one series (`name{labels}`) on `client`'s `/metrics`, 0 if absent.
pub async fn metric(client: &TestClient, series: &str) -> f64 {
    let res = client.get("/metrics").await;
    res.assert_status(200);
    res.text
        .lines()
        .filter_map(|line| line.rsplit_once(' '))
        .find(|(name, _)| *name == series)
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0.0)
}
