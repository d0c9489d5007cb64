//! The HTTP server bootstrap every service uses.
//!
//! [`start`] binds the listener, then builds the same middleware stack and
//! error handling around each service's routes:
//!
//! ```text
//! request ─▶ request id ─▶ span + access log ─▶ HTTP metrics ─▶ CORS
//!         ─▶ problem bodies for bare errors ─▶ deadline read ─▶ caller (bearer token)
//!         ─▶ rate limits ─▶ chaos ─▶ deadline enforced ─▶ routes
//! ```
//!
//! The routes are the service's, the health routes, and with
//! `CHAOS_CONTROL=on` the live fault control (`/admin/chaos`, see
//! [`shared_chaos`]), whose settings are one [`Chaos`] shared by all workers.
//!
//! (actix runs the last `.wrap` first, so the code lists them inside-out.)
//! The order matters: the id exists before the span that carries it opens,
//! and the access log and the metrics sit outside CORS and the error
//! handlers, so that they see the status the caller gets. Rate limits sit
//! inside CORS, so that a 429 carries the CORS headers a browser needs to
//! read it (and preflights are answered before they could be counted), and
//! outside chaos, so that a caller over quota is refused before any work
//! or injected delay is spent on it; their 429s go through the access log
//! and the HTTP metrics like any other answer.
//! The caller is known before the rate limits (their key is its subject when
//! it has one) and before fault injection, so a bad token is refused even
//! when chaos is on.
//! The caller's deadline (`X-Request-Timeout-Ms`) is read as the request
//! arrives, before anything can delay it, and enforced last, after chaos, so
//! that a request held past its deadline (by an injected delay, or by a wait
//! for a token check) is answered 504 and its handler never starts.
//!
//! Shutdown is ours rather than actix's: on SIGTERM readiness turns 503 at
//! once, the listener stays open for `drain_delay` so load balancers notice,
//! then it closes and in-flight requests get `shutdown_timeout` to finish.
//! SIGINT (Ctrl-C) skips the delay.
//!
//! Owns: the middleware order, the error handlers, the plumbing routes and
//! the shutdown sequence, and [`ServerConfig`], which composes the settings
//! of the crates it puts together (http, auth, rate-limit, chaos). Must not
//! know: databases, events, or any service's routes and words.

mod config;
pub use config::ServerConfig;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use utoipa_actix_web::AppExt;

use shared_auth as auth;
use shared_auth::Authenticator;
use shared_chaos as chaos;
use shared_chaos::Chaos;
use shared_config::Switch;
use shared_http::health::Lifecycle;
use shared_http::metrics::{HttpMetrics, MetricsRegistry, Registry};
use shared_http::openapi::ApiConfig;
use shared_http::service::ServiceInfo;
use shared_http::{
    access_log, cors, deadline, health, metrics, openapi, paths, problem, request_id,
};
use shared_rate_limit as rate_limit;
use shared_rate_limit::RateLimits;

/// A bound, running (once awaited) server.
pub struct Server {
    port: u16,
    server: actix_web::dev::Server,
    shutdown: ShutdownHandle,
    drain_delay: Duration,
}

/// Starts a graceful shutdown from elsewhere (signals, tests).
#[derive(Clone)]
pub struct ShutdownHandle {
    lifecycle: Lifecycle,
    server: ServerHandle,
}

impl ShutdownHandle {
    /// Readiness turns 503 now; after `drain_delay` the listener closes and
    /// in-flight requests finish. Resolves when the server has stopped.
    pub async fn shutdown(&self, drain_delay: Duration) {
        self.lifecycle.start_draining();
        tracing::info!(
            drain_delay_ms = shared_http::timestamp::millis(drain_delay),
            "draining"
        );
        actix_web::rt::time::sleep(drain_delay).await;
        self.server.stop(true).await;
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }
}

/// Binds `config.host:config.port` and builds the server around `routes`.
///
/// `registry` holds the service's own metric families; the HTTP metrics are
/// added here and the lot is served at `GET /metrics`. `routes` runs once per
/// worker: it registers the service's app data (stores, clients, health
/// checks) and routes, on an [`ApiConfig`] so that every route is also
/// described at `GET /openapi.json` (see [`shared_http::openapi`]).
///
/// # Errors
/// When the address cannot be bound.
pub fn start<F>(
    info: ServiceInfo,
    config: &ServerConfig,
    registry: Registry,
    routes: F,
) -> anyhow::Result<Server>
where
    F: Fn(&mut ApiConfig<'_>) + Send + Clone + 'static,
{
    let listener = TcpListener::bind((config.host.as_str(), config.port))
        .with_context(|| format!("binding {}:{}", config.host, config.port))?;
    let port = listener.local_addr()?.port();
    let lifecycle = Lifecycle::default();
    let data = AppData::new(info, config, registry, &lifecycle);
    let origins = config.allowed_origins.clone();

    let mut server = HttpServer::new(move || {
        // Routes registered through the utoipa app are described as they are
        // registered; the description is completed and served below.
        let (app, api) = App::new()
            .configure(|cfg| data.register(cfg))
            .wrap(from_fn(deadline::enforce))
            .wrap(from_fn(chaos::middleware))
            .wrap(from_fn(rate_limit::middleware))
            .wrap(from_fn(auth::middleware))
            .wrap(from_fn(deadline::stamp))
            .wrap(ErrorHandlers::new().default_handler(problem::replace_bare_error))
            .wrap(cors::cors(&origins))
            .wrap(from_fn(metrics::middleware))
            .wrap(from_fn(access_log::middleware))
            .wrap(from_fn(request_id::middleware))
            .into_utoipa_app()
            .configure(health::routes)
            .configure(chaos::routes(data.chaos_control))
            .configure(routes.clone())
            .split_for_parts();
        let api = openapi::describe(&data.info, api);
        data.chaos.learn_routes(&api);
        app.configure(openapi::serve(&api))
            .service(web::resource(paths::METRICS).route(web::get().to(metrics::serve)))
            .default_service(web::to(problem::not_found))
    })
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(config.shutdown_timeout.as_secs().max(1));
    if let Some(workers) = config.workers {
        server = server.workers(workers);
    }
    let server = server.run();
    let shutdown = ShutdownHandle {
        lifecycle,
        server: server.handle(),
    };
    Ok(Server {
        port,
        server,
        shutdown,
        drain_delay: config.drain_delay,
    })
}

/// The app data of every worker, made once and cloned into each.
#[derive(Clone)]
struct AppData {
    info: web::Data<ServiceInfo>,
    lifecycle: web::Data<Lifecycle>,
    chaos: web::Data<Chaos>,
    chaos_control: Switch,
    authenticator: web::Data<Authenticator>,
    rate_limits: web::Data<RateLimits>,
    http_metrics: web::Data<HttpMetrics>,
    registry: web::Data<MetricsRegistry>,
    body_limit: usize,
}

impl AppData {
    /// The shared state of `config`'s server; starts the rate limiters'
    /// pruning and the signing keys' refresh.
    fn new(
        info: ServiceInfo,
        config: &ServerConfig,
        mut registry: Registry,
        lifecycle: &Lifecycle,
    ) -> Self {
        let rate_limits = web::Data::new(RateLimits::new(&config.rate_limits, &mut registry));
        rate_limit::spawn_pruning(rate_limits.clone(), lifecycle.clone());
        let authenticator = web::Data::new(Authenticator::new(&config.auth, &mut registry));
        let (keys, draining) = (authenticator.clone(), lifecycle.clone());
        actix_web::rt::spawn(async move { keys.keep_keys_fresh(|| draining.is_draining()).await });
        Self {
            rate_limits,
            http_metrics: web::Data::new(HttpMetrics::register(&mut registry)),
            registry: web::Data::new(MetricsRegistry::new(registry)),
            info: web::Data::new(info),
            lifecycle: web::Data::new(lifecycle.clone()),
            chaos: web::Data::new(Chaos::new(&config.chaos)),
            chaos_control: config.chaos_control,
            authenticator,
            body_limit: config.body_limit,
        }
    }

    fn register(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(self.info.clone())
            .app_data(self.lifecycle.clone())
            .app_data(self.chaos.clone())
            .app_data(self.authenticator.clone())
            .app_data(self.rate_limits.clone())
            .app_data(self.http_metrics.clone())
            .app_data(self.registry.clone())
            .app_data(problem::json_config(self.body_limit))
            .app_data(problem::query_config())
            .app_data(problem::path_config());
    }
}

impl Server {
    /// The bound port (the real one when 0 was asked for).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Serves until SIGTERM/SIGINT (or a [`ShutdownHandle`]) stops the server.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let shutdown = self.shutdown.clone();
        let drain_delay = self.drain_delay;
        let signals = actix_web::rt::spawn(async move {
            let delay = match wait_for_signal().await {
                Signal::Terminate => drain_delay,
                Signal::Interrupt => Duration::ZERO,
            };
            shutdown.shutdown(delay).await;
        });
        let result = self.server.await;
        signals.abort();
        tracing::info!("stopped");
        result
    }
}

enum Signal {
    Terminate,
    Interrupt,
}

async fn wait_for_signal() -> Signal {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => return Signal::Terminate,
                _ = tokio::signal::ctrl_c() => return Signal::Interrupt,
            }
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    Signal::Interrupt
}
