//! Wires configuration, the store, the events relay and the routes into a server.

use actix_web::web;
use shared_db::DatabaseCheck;
use shared_events::broker::BrokerCheck;
use shared_events::{Broker, EventMetrics, Outbox};
use shared_http::health::HealthChecks;
use shared_http::metrics::Registry;
use shared_http::service::ServiceInfo;
use shared_server::Server;

use crate::config::Config;
use crate::routes::routes;
use crate::store::Store;

/// The service name of the events: stream `SHOP_PRICING`, source `/pricing`.
const SERVICE: &str = "pricing";

/// Connects the store (migrating it, and seeding it from the catalogue when
/// empty), starts the events relay when events are on, and binds the
/// listener; await `run_until_stopped` to serve.
///
/// # Errors
/// When the database cannot be reached or migrated, `NATS_URL` cannot be
/// used, or the address cannot be bound.
pub async fn build(config: Config) -> anyhow::Result<Server> {
    let broker = Broker::connect(&config.events, SERVICE).await?;
    let outbox = Outbox::for_broker(broker.as_ref());
    let store = Store::connect(&config.database, outbox.clone()).await?;
    let seeded = store.seed_if_empty(&config.price_book).await?;
    tracing::info!(
        database = shared_db::backend_name(&config.database.url),
        seeded,
        "pricing store ready"
    );
    let mut registry = Registry::default();
    let event_metrics = EventMetrics::register(&mut registry);
    let rules = web::Data::new(config.price_book.rules().clone());
    let store_data = web::Data::new(store.clone());
    let info = ServiceInfo::new(SERVICE, env!("CARGO_PKG_VERSION"));
    let broker_for_checks = broker.clone();
    let server = shared_server::start(info, &config.server, registry, move |cfg| {
        let mut checks = HealthChecks::new().with(DatabaseCheck::new(store_data.database()));
        if let Some(broker) = &broker_for_checks {
            checks = checks.with(BrokerCheck(broker.clone()));
        }
        cfg.app_data(store_data.clone())
            .app_data(rules.clone())
            .app_data(web::Data::new(checks))
            .configure(routes);
    })?;
    if let Some(broker) = broker {
        let lifecycle = server.shutdown_handle().lifecycle().clone();
        shared_events::relay::start(
            store.database(),
            &broker,
            &outbox,
            &event_metrics,
            SERVICE,
            &lifecycle,
        );
    }
    tracing::info!(port = server.port(), "pricing listening");
    Ok(server)
}
