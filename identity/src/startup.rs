//! Wires configuration, the store, the keys, the throttle and the routes into a server.

use actix_web::http::Method;
use actix_web::web;
use anyhow::Context;
use shared_auth::AuthConfig;
use shared_db::DatabaseCheck;
use shared_http::health::HealthChecks;
use shared_http::metrics::Registry;
use shared_http::service::ServiceInfo;
use shared_rate_limit::SignInRoutes;
use shared_server::Server;
use shared_server::ServerConfig;

use crate::clients::ClientRegistry;
use crate::config::Config;
use crate::hashing::HashingPool;
use crate::keys::KeySet;
use crate::metrics::IdentityMetrics;
use crate::passwords::Hasher;
use crate::routes::{Operators, routes};
use crate::store::Store;
use crate::throttle::{SWEEP_INTERVAL, SignInThrottle};
use crate::tokens::TokenIssuer;

/// Connects the store (migrating it), loads or generates the signing keys,
/// starts the throttle's sweeper and binds the listener; await
/// `run_until_stopped` to serve.
///
/// # Errors
/// When the database cannot be reached or migrated, a key cannot be loaded,
/// or the address cannot be bound.
pub async fn build(config: Config) -> anyhow::Result<Server> {
    let store = Store::connect(&config.database).await?;
    tracing::info!(
        database = shared_db::backend_name(&config.database.url),
        "identity store ready"
    );
    let issuer = token_issuer(&config)?;
    let throttle = web::Data::new(SignInThrottle::new(config.sign_in_throttle)?);

    let mut registry = Registry::default();
    let metrics = web::Data::new(IdentityMetrics::register(&mut registry));
    let info = ServiceInfo::new("identity", env!("CARGO_PKG_VERSION"));
    let store_data = web::Data::new(store);
    let hasher = Hasher::new()?;
    let provisioned = crate::seed::provision(&store_data, &hasher, &config.accounts).await?;
    if !config.accounts.is_empty() {
        tracing::info!(
            listed = config.accounts.len(),
            ?provisioned,
            "accounts provisioned"
        );
    }
    let hashing = web::Data::new(HashingPool::new(
        hasher,
        config.hashing,
        metrics.get_ref().clone(),
    )?);
    let sign_in_routes = web::Data::new(sign_in_routes());
    let issuer = web::Data::new(issuer);
    let clients = web::Data::new(ClientRegistry::new(&config.clients));
    let operators = web::Data::new(Operators(config.operators.clone()));
    let throttle_data = throttle.clone();
    let server_config = server_config(&config, &issuer)?;
    let server = shared_server::start(info, &server_config, registry, move |cfg| {
        let checks = HealthChecks::new().with(DatabaseCheck::new(store_data.database()));
        cfg.app_data(store_data.clone())
            .app_data(hashing.clone())
            .app_data(sign_in_routes.clone())
            .app_data(issuer.clone())
            .app_data(clients.clone())
            .app_data(operators.clone())
            .app_data(throttle_data.clone())
            .app_data(metrics.clone())
            .app_data(web::Data::new(checks))
            .configure(routes);
    })?;

    let lifecycle = server.shutdown_handle().lifecycle().clone();
    actix_web::rt::spawn(sweep(throttle, lifecycle));
    tracing::info!(port = server.port(), "identity listening");
    Ok(server)
}

/// The signing keys, loaded (or generated), behind the token issuer.
fn token_issuer(config: &Config) -> anyhow::Result<TokenIssuer> {
    let keys = KeySet::load(&config.keys).context("loading the signing keys")?;
    keys.refuse_published(config.allow_published_keys)?;
    tracing::info!(
        signing_kid = keys.current().kid(),
        published = keys.jwks().len(),
        "signing keys loaded"
    );
    Ok(TokenIssuer::new(
        keys,
        config.issuer.clone(),
        config.audience.clone(),
        config.token_ttl,
    ))
}

/// The routes anyone may call with a password or a client secret: they
/// spend `RATE_LIMIT_SIGNIN_PER_MIN`, per address, not the writes quota.
fn sign_in_routes() -> SignInRoutes {
    SignInRoutes::new([
        (Method::POST, "/accounts"),
        (Method::POST, "/sessions"),
        (Method::POST, "/token"),
    ])
}

/// The server settings; once identity can issue a token with a scope
/// (operators or clients) and trusts no issuer (`AUTH_ISSUER`), it verifies
/// the tokens it signs itself, so that its own `/admin/chaos` needs
/// `chaos:write` as every other service's does (fail closed).
fn server_config(config: &Config, issuer: &TokenIssuer) -> anyhow::Result<ServerConfig> {
    let mut server = config.server.clone();
    let issues_scopes = !config.operators.is_empty() || !config.clients.is_empty();
    if issues_scopes && !server.auth.is_on() {
        let jwks = serde_json::from_value(serde_json::json!({ "keys": issuer.keys().jwks() }))
            .context("reading back the published keys")?;
        server.auth = AuthConfig::own_tokens(issuer.issuer(), &config.audience, jwks);
    }
    Ok(server)
}

/// Forgets old sign-in failures every [`SWEEP_INTERVAL`] until draining.
async fn sweep(throttle: web::Data<SignInThrottle>, lifecycle: shared_http::health::Lifecycle) {
    shared_http::periodic::every(
        "forgetting old sign-in failures",
        SWEEP_INTERVAL,
        lifecycle,
        || {
            throttle.retain_recent();
            std::future::ready(Ok(()))
        },
    )
    .await;
}
