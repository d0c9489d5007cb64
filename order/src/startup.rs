//! Wires configuration, the store, the downstream clients and their breakers,
//! and the routes into a server.

use std::sync::Arc;

use actix_web::web;
use shared::breaker::{CircuitBreaker, Clock, SystemClock};
use shared::db::DatabaseCheck;
use shared::health::{HealthChecks, ServiceInfo};
use shared::server::Server;

use crate::clients::{DependencyCheck, Downstream, InventoryClient, PricingClient};
use crate::config::Config;
use crate::routes::routes;
use crate::store::Store;

/// [`build_with_clock`] on the system clock.
///
/// # Errors
/// As [`build_with_clock`].
pub async fn build(config: Config) -> anyhow::Result<Server> {
    build_with_clock(config, Arc::new(SystemClock)).await
}

/// Connects the store and binds the listener; the breakers read `clock`
/// (tests pass a manual one). Await `run_until_stopped` to serve.
///
/// # Errors
/// When the database cannot be reached or migrated, or the address cannot be bound.
pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Server> {
    let store = Store::connect(&config.database).await?;
    tracing::info!(
        database = shared::db::backend_name(&config.database.url),
        inventory = %config.inventory_url,
        pricing = %config.pricing_url,
        "order store ready"
    );

    // One breaker per dependency for the whole process, shared by the workers.
    let inventory_breaker = Arc::new(CircuitBreaker::new(
        "inventory",
        config.breaker,
        clock.clone(),
    ));
    let pricing_breaker = Arc::new(CircuitBreaker::new("pricing", config.breaker, clock));

    let info = ServiceInfo::new("order", env!("CARGO_PKG_VERSION"));
    let store = web::Data::new(store);
    let server = shared::server::start(info, &config.server, move |cfg| {
        // Runs once per worker: the HTTP clients (and their pools) are worker-local.
        let inventory = Downstream::new(
            "inventory",
            config.inventory_url.clone(),
            inventory_breaker.clone(),
            config.request_timeout,
            config.service_token.clone(),
        );
        let pricing = Downstream::new(
            "pricing",
            config.pricing_url.clone(),
            pricing_breaker.clone(),
            config.request_timeout,
            None,
        );
        let checks = HealthChecks::new()
            .with(DatabaseCheck::new(store.pool().clone()))
            .with(DependencyCheck(inventory.clone()))
            .with(DependencyCheck(pricing.clone()));
        cfg.app_data(store.clone())
            .app_data(web::Data::new(InventoryClient::new(inventory)))
            .app_data(web::Data::new(PricingClient::new(pricing)))
            .app_data(web::Data::new(checks))
            .configure(routes);
    })?;
    tracing::info!(port = server.port(), "order listening");
    Ok(server)
}
