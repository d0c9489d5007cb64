//! Inventory configuration, read once from the environment.

use std::time::Duration;

use shared_config::Env;
use shared_db::DatabaseConfig;
use shared_events::EventsConfig;
use shared_server::ServerConfig;

use crate::domain::Catalog;

pub const DEFAULT_PORT: u16 = 7001;

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    /// Seeded into an empty store: the shipped catalogue or `INVENTORY_CATALOG`'s.
    pub catalog: Catalog,
    /// How long a reservation holds stock unless confirmed.
    pub reservation_ttl: Duration,
    /// How long `GET /items/{sku}` may answer from memory (zero: never).
    pub item_cache_ttl: Duration,
    /// When set, reservation endpoints need `Authorization: Bearer <token>`.
    pub service_token: Option<String>,
    /// `NATS_URL` and `EVENTS_*`: off (no outbox rows, no broker) unless set.
    pub events: EventsConfig,
}

impl Config {
    /// # Errors
    /// When a variable is invalid or `INVENTORY_CATALOG` cannot be loaded.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from(&Env::from_process())
    }

    /// # Errors
    /// As [`Config::from_env`].
    pub fn from(env: &Env) -> anyhow::Result<Self> {
        let catalog = env.data_file("INVENTORY_CATALOG", Catalog::shipped, Catalog::from_json)?;
        Ok(Self {
            server: ServerConfig::from_env(env, DEFAULT_PORT)?,
            database: DatabaseConfig::from_env(env, "inventory")?,
            catalog,
            reservation_ttl: env.millis("RESERVATION_TTL_MS", 60_000, 1)?,
            item_cache_ttl: env.millis("ITEM_CACHE_TTL_MS", 500, 0)?,
            service_token: env.optional("SERVICE_TOKEN"),
            events: EventsConfig::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bad_values() {
        let config = Config::from(&Env::from_pairs([])).expect("defaults");
        assert_eq!(config.server.port, 7001);
        assert_eq!(config.reservation_ttl, Duration::from_secs(60));
        assert_eq!(config.item_cache_ttl, Duration::from_millis(500));
        let off = Config::from(&Env::from_pairs([("ITEM_CACHE_TTL_MS", "0")])).expect("0 is off");
        assert_eq!(off.item_cache_ttl, Duration::ZERO);
        assert!(config.database.url.ends_with("/inventory.db"));
        assert!(config.service_token.is_none());
        assert!(!config.events.is_on());

        let err = Config::from(&Env::from_pairs([("RESERVATION_TTL_MS", "soon")]))
            .expect_err("not a number");
        assert!(err.to_string().contains("RESERVATION_TTL_MS"), "{err}");
        let err = Config::from(&Env::from_pairs([("INVENTORY_CATALOG", "/no/such.json")]))
            .expect_err("missing file");
        assert!(format!("{err:#}").contains("INVENTORY_CATALOG"), "{err:#}");
        let err = Config::from(&Env::from_pairs([("NATS_URL", "http://broker")]))
            .expect_err("not a nats URL");
        assert!(err.to_string().contains("NATS_URL"), "{err}");
        let on = Config::from(&Env::from_pairs([("NATS_URL", "nats://broker:4222")])).expect("ok");
        assert!(on.events.is_on());
    }
}
