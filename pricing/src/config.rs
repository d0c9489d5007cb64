//! Pricing configuration, read once from the environment.

use shared_config::Env;
use shared_db::DatabaseConfig;
use shared_events::EventsConfig;
use shared_server::ServerConfig;

use crate::domain::PriceBook;

pub const DEFAULT_PORT: u16 = 7003;

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    /// The currency and catalogue-wide tiers, and the prices seeded into an
    /// empty store: the shipped catalogue, or `PRICING_CATALOG`'s file.
    pub price_book: PriceBook,
    /// `NATS_URL` and `EVENTS_*`: off (no outbox rows, no broker) unless set.
    pub events: EventsConfig,
}

impl Config {
    /// # Errors
    /// When a variable is invalid, or `PRICING_CATALOG` names a file that
    /// cannot be read or is not a valid catalogue.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from(&Env::from_process())
    }

    /// # Errors
    /// As [`Config::from_env`].
    pub fn from(env: &Env) -> anyhow::Result<Self> {
        let price_book =
            env.data_file("PRICING_CATALOG", PriceBook::shipped, PriceBook::from_json)?;
        Ok(Self {
            server: ServerConfig::from_env(env, DEFAULT_PORT)?,
            database: DatabaseConfig::from_env(env, "pricing")?,
            price_book,
            events: EventsConfig::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_defaults_to_an_sqlite_file_in_the_data_dir() {
        let config = Config::from(&Env::from_pairs([("DATA_DIR", "/var/lib/shop")])).expect("ok");
        assert_eq!(config.database.url, "sqlite:///var/lib/shop/pricing.db");
        let env = Env::from_pairs([("DATABASE_URL", "mysql://x")]);
        let err = Config::from(&env).expect_err("unsupported");
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
        assert!(!config.events.is_on());
        let err = Config::from(&Env::from_pairs([("EVENTS_RELAY_BATCH", "lots")]))
            .expect_err("not a number");
        assert!(err.to_string().contains("EVENTS_RELAY_BATCH"), "{err}");
    }

    #[test]
    fn a_missing_catalogue_file_names_the_variable() {
        let env = Env::from_pairs([("PRICING_CATALOG", "/nonexistent/prices.json")]);
        let err = Config::from(&env).expect_err("missing file");
        assert!(format!("{err:#}").contains("PRICING_CATALOG"), "{err:#}");
    }
}
