//! Wires configuration, the price book and the routes into a server.

use actix_web::web;
use shared::metrics::Registry;
use shared::server::Server;
use shared::service::ServiceInfo;

use crate::config::Config;
use crate::routes::routes;

/// Binds the listener and builds the server; await `run_until_stopped` to serve.
///
/// # Errors
/// When the address cannot be bound.
pub async fn build(config: Config) -> anyhow::Result<Server> {
    tracing::info!(prices = config.price_book.len(), "price book loaded");
    let book = web::Data::new(config.price_book);
    let info = ServiceInfo::new("pricing", env!("CARGO_PKG_VERSION"));
    let server = shared::server::start(info, &config.server, Registry::default(), move |cfg| {
        cfg.app_data(book.clone()).configure(routes);
    })?;
    tracing::info!(port = server.port(), "pricing listening");
    Ok(server)
}
