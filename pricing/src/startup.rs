//! Wires configuration, the store and the routes into a server.

use actix_web::web;
use shared::db::DatabaseCheck;
use shared::health::HealthChecks;
use shared::metrics::Registry;
use shared::server::Server;
use shared::service::ServiceInfo;

use crate::config::Config;
use crate::routes::routes;
use crate::store::Store;

/// Connects the store (migrating it, and seeding it from the catalogue when
/// empty) and binds the listener; await `run_until_stopped` to serve.
///
/// # Errors
/// When the database cannot be reached or migrated, or the address cannot be bound.
pub async fn build(config: Config) -> anyhow::Result<Server> {
    let store = Store::connect(&config.database).await?;
    let seeded = store.seed_if_empty(&config.price_book).await?;
    tracing::info!(
        database = shared::db::backend_name(&config.database.url),
        seeded,
        "pricing store ready"
    );
    let rules = web::Data::new(config.price_book.rules().clone());
    let store_data = web::Data::new(store);
    let info = ServiceInfo::new("pricing", env!("CARGO_PKG_VERSION"));
    let server = shared::server::start(info, &config.server, Registry::default(), move |cfg| {
        let checks = HealthChecks::new().with(DatabaseCheck::new(store_data.database()));
        cfg.app_data(store_data.clone())
            .app_data(rules.clone())
            .app_data(web::Data::new(checks))
            .configure(routes);
    })?;
    tracing::info!(port = server.port(), "pricing listening");
    Ok(server)
}
