//! Wires configuration, the store, the downstream clients and their breakers,
//! the events (relay, consumers, live feed; when `NATS_URL` is set),
//! and the routes into a server.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use shared_auth::Scope;
use shared_auth::ServiceToken;
use shared_chaos::ControlChaos;
use shared_db::DatabaseCheck;
use shared_events::broker::BrokerCheck;
use shared_events::consumer::Consumers;
use shared_events::feed::Feed;
use shared_events::{Broker, EventMetrics, Inbox, Outbox};
use shared_http::health::HealthChecks;
use shared_http::health::Lifecycle;
use shared_http::metrics::Registry;
use shared_http::openapi::ApiConfig;
use shared_http::service::ServiceInfo;
use shared_resilience::balancer::{Balancer, BalancerMetrics, discovery, probe};
use shared_resilience::breaker::{BreakerMetrics, CircuitBreaker, Clock, SystemClock};
use shared_server::Server;

use shared_auth::client::TokenSource;

use crate::clients::{
    CallPolicy, ConfirmRoute, Confirmations, Credentials, DependencyCheck, Downstream, Guards,
    InventoryClient, PricingClient, Retries,
};
use crate::config::Config;
use crate::consumers::{self, InventoryFactory};
use crate::events::SERVICE;
use crate::metrics::OrderMetrics;
use crate::recovery;
use crate::routes::{EventsState, routes};
use crate::saga::OrderLimits;
use crate::scopes::public_form;
use crate::store::Store;
use shared_resilience::bulkhead::{Bulkhead, BulkheadMetrics};

/// What order calls itself in its calls' `User-Agent`.
const USER_AGENT: &str = concat!("order/", env!("CARGO_PKG_VERSION"));
use shared_resilience::retry::RetryBudget;

/// The shortest pause between rounds of resolving abandoned orders (short
/// TTLs in tests and demos), and the longest (a 60 s TTL gives 30 s).
const BUSIEST_RECOVERY: Duration = Duration::from_millis(50);
const LAZIEST_RECOVERY: Duration = Duration::from_secs(30);
/// The services whose events `GET /events/stream` relays.
const FEED_PRODUCERS: [&str; 3] = ["order", "inventory", "pricing"];
/// How often handled event ids older than the inbox retention (as long as the
/// streams keep events) are forgotten.
const INBOX_PRUNING: Duration = Duration::from_secs(60);

/// [`build_with_clock`] on the system clock.
///
/// # Errors
/// As [`build_with_clock`].
pub async fn build(config: Config) -> anyhow::Result<Server> {
    build_with_clock(config, Arc::new(SystemClock)).await
}

/// The HTTP client settings for each dependency, shared by the workers.
#[derive(Clone)]
struct Dependencies {
    config: Arc<Config>,
    inventory: Guards,
    pricing: Guards,
    orders_bulkhead: Bulkhead,
    /// What inventory is shown (its reservation routes may need a token).
    inventory_credentials: Credentials,
    /// Whether inventory serves the batch confirm, as last seen by any worker.
    confirm_route: Arc<ConfirmRoute>,
    metrics: OrderMetrics,
}

/// Inventory's credentials: a client credentials token when `AUTH_CLIENT_ID`
/// is set, else `SERVICE_TOKEN` when set, else none.
fn inventory_credentials(config: &Config) -> Credentials {
    if let Some(source) = TokenSource::new(&config.server.auth) {
        tracing::info!(
            client_id = source.client_id(),
            "inventory calls carry this service's client credentials token"
        );
        return Credentials::Client(Arc::new(source));
    }
    match &config.service_token {
        Some(token) => Credentials::ServiceToken(token.as_str().into()),
        None => Credentials::None,
    }
}

impl Dependencies {
    /// The guards of each dependency, one of each for the whole process and
    /// shared by the workers: a breaker, a retry budget (each dependency's
    /// retries are bounded by the calls made to it), a bulkhead and the
    /// balancer over its endpoints (whose host names are resolved again
    /// and again from now on); and the orders' own bulkhead. Their metrics
    /// go into `registry`.
    fn new(config: Config, clock: &Arc<dyn Clock>, registry: &mut Registry) -> Self {
        let breaker_metrics = BreakerMetrics::register(registry);
        let balancer_metrics = BalancerMetrics::register(registry);
        let metrics = OrderMetrics::register(registry);
        let bulkheads = BulkheadMetrics::register(registry);
        let calls = &config.calls;
        let balancer = |name, list: &str| {
            let urls = discovery::base_urls(list);
            let balancer = Arc::new(
                Balancer::new(
                    name,
                    urls.clone(),
                    calls.balancing,
                    config.breaker,
                    clock.clone(),
                )
                .with_metrics(balancer_metrics.clone()),
            );
            discovery::spawn(&balancer, urls);
            probe::spawn(&balancer, shared_http::paths::READY);
            balancer
        };
        let guards = |name, max_in_flight, list| Guards {
            balancer: balancer(name, list),
            breaker: Arc::new(
                CircuitBreaker::new(name, config.breaker, clock.clone())
                    .with_metrics(breaker_metrics.clone()),
            ),
            retries: Retries {
                config: calls.retry,
                budget: Arc::new(RetryBudget::new(&calls.retry, clock.clone())),
            },
            bulkhead: Bulkhead::new(name, max_in_flight, &bulkheads),
        };
        Self {
            inventory: guards(
                "inventory",
                calls.inventory_max_in_flight,
                &config.inventory_url,
            ),
            pricing: guards("pricing", calls.pricing_max_in_flight, &config.pricing_url),
            orders_bulkhead: Bulkhead::new("orders", calls.orders_max_in_flight, &bulkheads),
            inventory_credentials: inventory_credentials(&config),
            confirm_route: Arc::new(ConfirmRoute::new(clock.clone())),
            metrics,
            config: Arc::new(config),
        }
    }

    /// The time rules every call follows.
    fn policy(&self) -> CallPolicy {
        CallPolicy {
            timeout: self.config.request_timeout,
            margin: self.config.calls.deadline_margin,
            compensation: self.config.calls.compensation_timeout,
        }
    }

    fn inventory(&self) -> Downstream {
        Downstream::new(
            "inventory",
            self.config.inventory_url.clone(),
            self.inventory.clone(),
            self.policy(),
            self.inventory_credentials.clone(),
            self.metrics.calls.clone(),
            USER_AGENT,
        )
    }

    fn pricing(&self) -> Downstream {
        Downstream::new(
            "pricing",
            self.config.pricing_url.clone(),
            self.pricing.clone(),
            self.policy(),
            Credentials::None,
            self.metrics.calls.clone(),
            USER_AGENT,
        )
    }
}

/// Connects the store, binds the listener and starts the task that resolves
/// abandoned orders; the breakers read `clock` (tests pass a manual one).
/// Await `run_until_stopped` to serve.
///
/// # Errors
/// When the database cannot be reached or migrated, or the address cannot be bound.
pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Server> {
    let outbox = if config.events.is_on() {
        Outbox::on()
    } else {
        Outbox::off()
    };
    let store = Store::connect(&config.database)
        .await?
        .with_events(outbox, crate::events::order_event);
    tracing::info!(
        database = shared_db::backend_name(&config.database.url),
        inventory = %config.inventory_url,
        pricing = %config.pricing_url,
        "order store ready"
    );

    let mut registry = Registry::default();
    let deps = Dependencies::new(config, &clock, &mut registry);
    let events = Events::connect(&deps, &store, &mut registry).await?;

    let info = ServiceInfo::new("order", env!("CARGO_PKG_VERSION"));
    let server = shared_server::start(
        info,
        &deps.config.server,
        registry,
        worker(deps.clone(), store.clone(), events.clone()),
    )?;

    let lifecycle = server.shutdown_handle().lifecycle().clone();
    events.start(&store, &lifecycle);
    // Orders a dead process left pending: resolved now, then every half TTL.
    let ttl = deps.config.reservation_ttl;
    actix_web::rt::spawn(recovery::run(
        store,
        InventoryClient::new(deps.inventory()),
        deps.metrics.clone(),
        ttl,
        (ttl / 2).clamp(BUSIEST_RECOVERY, LAZIEST_RECOVERY),
        lifecycle,
    ));
    tracing::info!(port = server.port(), "order listening");
    Ok(server)
}

/// What each worker registers: its own HTTP clients (awc pools are
/// worker-local), the shared store, health checks, metrics and events.
fn worker(
    deps: Dependencies,
    store: Store,
    events: Events,
) -> impl Fn(&mut ApiConfig<'_>) + Send + Clone + 'static {
    let store = web::Data::new(store);
    // The token order presents to inventory also switches order's own fault
    // injection where `CHAOS_CONTROL=on` (see `shared_chaos`); it grants nothing else here.
    let token = web::Data::new(ServiceToken::new(
        deps.config.service_token.clone(),
        &[ControlChaos::NAME],
    ));
    let limits = web::Data::new(OrderLimits {
        deadline: deps.config.calls.order_deadline,
        in_flight: deps.orders_bulkhead.clone(),
        // A confirm's worth of time, but never more than half the budget, so
        // that a long REQUEST_TIMEOUT_MS cannot leave the quote no time at all.
        confirm_reserve: deps
            .config
            .request_timeout
            .min(deps.config.calls.order_deadline / 2),
    });
    move |cfg| {
        let inventory = deps.inventory();
        let pricing = deps.pricing();
        let mut checks = HealthChecks::new()
            .with(DatabaseCheck::new(store.database()))
            .with(DependencyCheck(inventory.clone()))
            .with(DependencyCheck(pricing.clone()));
        if let Some(broker) = &events.broker {
            checks = checks.with(BrokerCheck(broker.clone()));
        }
        cfg.app_data(store.clone())
            .app_data(token.clone())
            .app_data(web::Data::new(Confirmations::start(
                InventoryClient::new(inventory.clone()),
                deps.metrics.clone(),
                deps.confirm_route.clone(),
            )))
            .app_data(web::Data::new(InventoryClient::new(inventory)))
            .app_data(web::Data::new(PricingClient::new(pricing)))
            .app_data(web::Data::new(checks))
            .app_data(web::Data::new(deps.metrics.clone()))
            .app_data(limits.clone())
            .configure(routes(events.state.clone()));
    }
}

/// Order's events: the broker (`None` while off), their metrics (registered
/// either way), the consumers, and what the events routes read (`None`
/// while off: the routes do not exist).
#[derive(Clone)]
struct Events {
    broker: Option<Broker>,
    metrics: EventMetrics,
    consumers: Consumers,
    state: Option<web::Data<EventsState>>,
}

impl Events {
    async fn connect(
        deps: &Dependencies,
        store: &Store,
        registry: &mut Registry,
    ) -> anyhow::Result<Self> {
        let metrics = EventMetrics::register(registry);
        let broker = Broker::connect(&deps.config.events, SERVICE).await?;
        let inventory: InventoryFactory = {
            let deps = deps.clone();
            Arc::new(move || InventoryClient::new(deps.inventory()))
        };
        let consumers = consumers::consumers(store, inventory, &deps.metrics);
        // With tokens verified, a listener without one sees events' public form.
        let tokens_on = deps.config.server.auth.issuer.is_some();
        let state = broker.as_ref().map(|broker| {
            web::Data::new(EventsState::new(
                broker.clone(),
                consumers.clone(),
                tokens_on,
            ))
        });
        Ok(Self {
            broker,
            metrics,
            consumers,
            state,
        })
    }

    /// When events are on: the relay, the consumers and the live feed,
    /// until draining.
    fn start(&self, store: &Store, lifecycle: &Lifecycle) {
        let (Some(broker), Some(state)) = (&self.broker, &self.state) else {
            return;
        };
        start_relay(store, broker, &self.metrics, lifecycle);
        self.consumers.start(broker, &self.metrics, lifecycle);
        state.set_feed(Feed::new(broker, &FEED_PRODUCERS, lifecycle, public_form));
    }
}

/// The relay of the outbox, its watcher and the inbox's pruning, until
/// draining.
fn start_relay(store: &Store, broker: &Broker, metrics: &EventMetrics, lifecycle: &Lifecycle) {
    let db = store.database().clone();
    actix_web::rt::spawn(Inbox::prune(
        db.clone(),
        broker.config().inbox_retention(),
        INBOX_PRUNING,
        lifecycle.clone(),
    ));
    shared_events::relay::start(&db, broker, store.outbox(), metrics, SERVICE, lifecycle);
}
