//! Wires configuration, the store, the expiry task, the events relay and the
//! routes into a server.

use actix_web::web;
use shared_auth::ServiceToken;
use shared_chaos::ControlChaos;
use shared_db::DatabaseCheck;
use shared_events::broker::BrokerCheck;
use shared_events::{Broker, EventMetrics, Outbox};
use shared_http::health::HealthChecks;
use shared_http::metrics::Registry;
use shared_http::service::ServiceInfo;
use shared_server::Server;

use crate::config::Config;
use crate::events;
use crate::expiry;
use crate::metrics::InventoryMetrics;
use crate::routes::ReservationTtl;
use crate::routes::routes;
use crate::scopes::ReserveStock;
use crate::store::Store;
use shared_auth::Scope;

/// The service name of the events: stream `SHOP_INVENTORY`, source `/inventory`.
const SERVICE: &str = "inventory";

/// Connects the store (migrating and seeding it), starts the expiry task and,
/// with events on, the relay; binds the listener; await `run_until_stopped`
/// to serve.
///
/// # Errors
/// When the database cannot be reached or migrated, `NATS_URL` cannot be
/// used, or the address cannot be bound.
pub async fn build(config: Config) -> anyhow::Result<Server> {
    let broker = Broker::connect(&config.events, SERVICE).await?;
    let outbox = Outbox::for_broker(broker.as_ref());
    let store = Store::connect(&config.database, outbox.clone())
        .await?
        .with_item_cache(config.item_cache_ttl)
        .with_expiry_event(events::reservation_expired)
        .with_stock_event(events::reservation_moved);
    let seeded = store
        .seed_if_empty(&config.catalog.items, events::item_seeded)
        .await?;
    tracing::info!(
        database = shared_db::backend_name(&config.database.url),
        seeded,
        "inventory store ready"
    );

    let mut registry = Registry::default();
    let metrics = InventoryMetrics::register(&mut registry);
    let event_metrics = EventMetrics::register(&mut registry);

    let info = ServiceInfo::new("inventory", env!("CARGO_PKG_VERSION"));
    let store_data = web::Data::new(store.clone());
    let ttl = web::Data::new(ReservationTtl(config.reservation_ttl));
    // The service token holds stock, and switches fault injection where
    // `CHAOS_CONTROL=on` (see `shared_chaos`).
    let token = web::Data::new(ServiceToken::new(
        config.service_token.clone(),
        &[ReserveStock::NAME, ControlChaos::NAME],
    ));
    let metrics_data = web::Data::new(metrics.clone());
    let broker_for_checks = broker.clone();
    let server = shared_server::start(info, &config.server, registry, move |cfg| {
        let mut checks = HealthChecks::new().with(DatabaseCheck::new(store_data.database()));
        if let Some(broker) = &broker_for_checks {
            checks = checks.with(BrokerCheck(broker.clone()));
        }
        cfg.app_data(store_data.clone())
            .app_data(ttl.clone())
            .app_data(token.clone())
            .app_data(metrics_data.clone())
            .app_data(web::Data::new(checks))
            .configure(routes);
    })?;

    let lifecycle = server.shutdown_handle().lifecycle().clone();
    let interval = expiry::sweep_interval(config.reservation_ttl);
    if let Some(broker) = broker {
        shared_events::relay::start(
            store.database(),
            &broker,
            &outbox,
            &event_metrics,
            SERVICE,
            &lifecycle,
        );
    }
    actix_web::rt::spawn(expiry::run(store, interval, lifecycle, metrics));
    tracing::info!(port = server.port(), "inventory listening");
    Ok(server)
}
