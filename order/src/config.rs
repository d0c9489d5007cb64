//! Order configuration, read once from the environment.

use std::time::Duration;

use shared_config::ConfigError;
use shared_config::Env;
use shared_db::DatabaseConfig;
use shared_events::EventsConfig;
use shared_resilience::balancer::{BalancerConfig, discovery};
use shared_resilience::breaker::BreakerConfig;
use shared_resilience::retry::RetryConfig;
use shared_server::ServerConfig;

pub const DEFAULT_PORT: u16 = 7002;

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    /// One base URL or a comma-separated list (several endpoints); each
    /// host name may resolve to several addresses (see `calls.balancing`).
    pub inventory_url: String,
    pub pricing_url: String,
    /// Bound on every downstream call, connection to last byte.
    pub request_timeout: Duration,
    /// One breaker per dependency, both with these settings.
    pub breaker: BreakerConfig,
    /// Sent to inventory as `Authorization: Bearer …` when set, unless
    /// `server.auth.client` (`AUTH_CLIENT_ID`, `AUTH_CLIENT_SECRET`,
    /// `AUTH_TOKEN_URL`) is: then a client credentials token is sent instead.
    pub service_token: Option<String>,
    /// Inventory's reservation TTL: a `pending` order older than this was
    /// abandoned by a process that died mid-saga, and is resolved as failed.
    pub reservation_ttl: Duration,
    /// NATS JetStream (`NATS_URL`, `EVENTS_*`); off while `NATS_URL` is unset.
    pub events: EventsConfig,
    /// Deadlines, retries and in-flight limits of the order flow's calls.
    pub calls: CallConfig,
}

/// How the order flow spends time and capacity on its dependencies.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// An order's whole budget (`ORDER_DEADLINE_MS`); a caller's
    /// `X-Request-Timeout-Ms` can only lower it.
    pub order_deadline: Duration,
    /// Taken off the time left before it is sent downstream
    /// (`DEADLINE_MARGIN_MS`): the answer needs time to travel back.
    pub deadline_margin: Duration,
    /// The budget of a release of its own (`COMPENSATION_TIMEOUT_MS`): a
    /// compensation runs after the order's budget may be gone.
    pub compensation_timeout: Duration,
    /// Retries of failed calls and their budget (`RETRY_*`).
    pub retry: RetryConfig,
    /// Calls to inventory in flight at once (`INVENTORY_MAX_IN_FLIGHT`).
    pub inventory_max_in_flight: usize,
    /// Calls to pricing in flight at once (`PRICING_MAX_IN_FLIGHT`).
    pub pricing_max_in_flight: usize,
    /// Orders being placed at once (`ORDERS_MAX_IN_FLIGHT`).
    pub orders_max_in_flight: usize,
    /// How calls are spread over a dependency's endpoints
    /// (`LOAD_BALANCER`, `DISCOVERY_REFRESH_MS`).
    pub balancing: BalancerConfig,
}

impl Default for CallConfig {
    /// The documented defaults.
    fn default() -> Self {
        Self {
            order_deadline: Duration::from_millis(5000),
            deadline_margin: Duration::from_millis(20),
            compensation_timeout: Duration::from_millis(1000),
            retry: RetryConfig::default(),
            inventory_max_in_flight: 64,
            pricing_max_in_flight: 64,
            orders_max_in_flight: 256,
            balancing: BalancerConfig::default(),
        }
    }
}

impl CallConfig {
    /// # Errors
    /// When a variable is invalid.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            order_deadline: env.millis("ORDER_DEADLINE_MS", 5000, 1)?,
            deadline_margin: env.millis("DEADLINE_MARGIN_MS", 20, 0)?,
            compensation_timeout: env.millis("COMPENSATION_TIMEOUT_MS", 1000, 1)?,
            retry: RetryConfig::from_env(env)?,
            inventory_max_in_flight: env.at_least_as("INVENTORY_MAX_IN_FLIGHT", 64, 1)?,
            pricing_max_in_flight: env.at_least_as("PRICING_MAX_IN_FLIGHT", 64, 1)?,
            orders_max_in_flight: env.at_least_as("ORDERS_MAX_IN_FLIGHT", 256, 1)?,
            balancing: BalancerConfig {
                strategy: env.parse("LOAD_BALANCER", Default::default())?,
                refresh: env.millis("DISCOVERY_REFRESH_MS", 5000, 1)?,
                ..BalancerConfig::default()
            },
        })
    }
}

impl Config {
    /// # Errors
    /// When a variable is invalid.
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self::from(&Env::from_process())?)
    }

    /// # Errors
    /// When a variable is invalid.
    pub fn from(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            server: ServerConfig::from_env(env, DEFAULT_PORT)?,
            database: DatabaseConfig::from_env(env, "order")?,
            inventory_url: url_list(env, "INVENTORY_URL", "http://localhost:7001")?,
            pricing_url: url_list(env, "PRICING_URL", "http://localhost:7003")?,
            request_timeout: env.millis("REQUEST_TIMEOUT_MS", 2000, 1)?,
            breaker: BreakerConfig {
                failure_threshold: env.at_least_as("BREAKER_FAILURE_THRESHOLD", 5, 1)?,
                reset_timeout: env.millis("BREAKER_RESET_TIMEOUT_MS", 30_000, 1)?,
            },
            service_token: env.optional("SERVICE_TOKEN"),
            reservation_ttl: env.millis("RESERVATION_TTL_MS", 60_000, 1)?,
            events: EventsConfig::from_env(env)?,
            calls: CallConfig::from_env(env)?,
        })
    }
}

/// A dependency's base URL, or comma-separated list of them, each an
/// `http://` or `https://` URL; kept as the list, normalised.
fn url_list(env: &Env, name: &str, default: &str) -> Result<String, ConfigError> {
    let raw = env.string(name, default);
    let urls = discovery::base_urls(&raw);
    if urls.is_empty() {
        return Err(ConfigError::new(name, &raw, "expected one URL or more"));
    }
    if let Some(bad) = urls.iter().find(|url| !shared_config::is_http_url(url)) {
        return Err(ConfigError::new(
            name,
            &raw,
            format!("{bad}: expected an http:// or https:// URL"),
        ));
    }
    if let Some((url, why)) = urls
        .iter()
        .find_map(|url| discovery::refusal(url).map(|why| (url, why)))
    {
        return Err(ConfigError::new(name, &raw, format!("{url}: {why}")));
    }
    Ok(urls.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared_resilience::balancer::Strategy;

    #[test]
    fn defaults_follow_the_contract() {
        let config = Config::from(&Env::from_pairs([])).expect("defaults");
        assert_eq!(config.server.port, 7002);
        assert_eq!(config.inventory_url, "http://localhost:7001");
        assert_eq!(config.pricing_url, "http://localhost:7003");
        assert_eq!(config.request_timeout, Duration::from_millis(2000));
        assert_eq!(config.breaker.failure_threshold, 5);
        assert_eq!(config.breaker.reset_timeout, Duration::from_secs(30));
        let calls = config.calls;
        assert_eq!(calls.order_deadline, Duration::from_millis(5000));
        assert_eq!(calls.deadline_margin, Duration::from_millis(20));
        assert_eq!(calls.compensation_timeout, Duration::from_millis(1000));
        assert_eq!(calls.retry, RetryConfig::default());
        assert_eq!(
            (
                calls.inventory_max_in_flight,
                calls.pricing_max_in_flight,
                calls.orders_max_in_flight
            ),
            (64, 64, 256)
        );
        assert_eq!(calls.balancing.strategy, Strategy::PowerOfTwo);
        assert_eq!(calls.balancing.refresh, Duration::from_millis(5000));
    }

    #[test]
    fn dependencies_take_lists_and_a_balancer() {
        let env = Env::from_pairs([
            ("INVENTORY_URL", "http://a:7001/, http://b:7001"),
            ("PRICING_URL", "http://_http._tcp.pricing.shop.svc/"),
            ("LOAD_BALANCER", "round_robin"),
            ("DISCOVERY_REFRESH_MS", "250"),
        ]);
        let config = Config::from(&env).expect("valid");
        assert_eq!(config.inventory_url, "http://a:7001,http://b:7001");
        assert_eq!(config.pricing_url, "http://_http._tcp.pricing.shop.svc");
        assert_eq!(config.calls.balancing.strategy, Strategy::RoundRobin);
        assert_eq!(config.calls.balancing.refresh, Duration::from_millis(250));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("INVENTORY_URL", "localhost:7001"),
            ("PRICING_URL", "ftp://x"),
            ("INVENTORY_URL", "http://a:7001,b:7001"),
            ("PRICING_URL", " , "),
            ("INVENTORY_URL", "http://_http._tcp.inventory:7001"),
            ("LOAD_BALANCER", "random"),
            ("DISCOVERY_REFRESH_MS", "0"),
            ("DISCOVERY_REFRESH_MS", "often"),
            ("REQUEST_TIMEOUT_MS", "fast"),
            ("REQUEST_TIMEOUT_MS", "0"),
            ("BREAKER_FAILURE_THRESHOLD", "0"),
            ("BREAKER_RESET_TIMEOUT_MS", "-5"),
            ("ORDER_DEADLINE_MS", "0"),
            ("DEADLINE_MARGIN_MS", "soon"),
            ("COMPENSATION_TIMEOUT_MS", "0"),
            ("RETRY_MAX_ATTEMPTS", "0"),
            ("INVENTORY_MAX_IN_FLIGHT", "0"),
            ("PRICING_MAX_IN_FLIGHT", "many"),
            ("ORDERS_MAX_IN_FLIGHT", "-1"),
        ] {
            let err = Config::from(&Env::from_pairs([(name, value)])).expect_err(name);
            assert_eq!(err.name, name);
        }
    }
}
