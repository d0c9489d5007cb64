//! Identity configuration, read once from the environment.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use shared_config::Env;
use shared_db::DatabaseConfig;
use shared_server::ServerConfig;

use crate::clients::ClientConfig;
use crate::domain::Email;
use crate::hashing::HashingSettings;
use crate::keys::KeySource;
use crate::seed::SeedAccount;
use crate::throttle::ThrottleSettings;

pub const DEFAULT_PORT: u16 = 7004;

/// The file the development key is generated into, inside `DATA_DIR`.
pub const GENERATED_KEY_FILE: &str = "identity-signing-key.pem";

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    /// The tokens' `iss`, and the base of the discovery URLs (no trailing slash).
    pub issuer: String,
    /// The tokens' `aud`.
    pub audience: String,
    pub keys: KeySource,
    /// `IDENTITY_ALLOW_PUBLISHED_KEYS`: start with a key published in this
    /// repository (development only; refused otherwise).
    pub allow_published_keys: bool,
    pub clients: Vec<ClientConfig>,
    /// Accounts whose session tokens carry the operator scopes.
    pub operators: Vec<Email>,
    /// `IDENTITY_ACCOUNTS`: accounts created at start-up when missing.
    /// (Shared rather than cloned: passwords are not `Clone`.)
    pub accounts: std::sync::Arc<[SeedAccount]>,
    pub token_ttl: Duration,
    pub sign_in_throttle: ThrottleSettings,
    /// How many passwords are hashed at once, and how long a request waits for its turn.
    pub hashing: HashingSettings,
}

impl Config {
    /// # Errors
    /// When a variable is invalid or a file it names cannot be read.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from(&Env::from_process())
    }

    /// # Errors
    /// As [`Config::from_env`].
    pub fn from(env: &Env) -> anyhow::Result<Self> {
        Ok(Self {
            server: ServerConfig::from_env(env, DEFAULT_PORT)?,
            database: DatabaseConfig::from_env(env, "identity")?,
            issuer: env.http_url("IDENTITY_ISSUER", "http://localhost:7004")?,
            audience: env.string("IDENTITY_AUDIENCE", "shop"),
            keys: key_source(env)?,
            allow_published_keys: env.parse("IDENTITY_ALLOW_PUBLISHED_KEYS", false)?,
            clients: clients(env)?,
            operators: operators(env)?,
            accounts: match json_setting(env, "IDENTITY_ACCOUNTS")? {
                Some(json) => SeedAccount::parse_list(&json)
                    .context("IDENTITY_ACCOUNTS")?
                    .into(),
                None => std::sync::Arc::new([]),
            },
            token_ttl: Duration::from_secs(env.at_least("ACCESS_TOKEN_TTL_S", 900, 1)?),
            sign_in_throttle: ThrottleSettings {
                burst: NonZeroU32::new(env.at_least_as("IDENTITY_SIGNIN_FAILURE_BURST", 5, 1)?)
                    .context("IDENTITY_SIGNIN_FAILURE_BURST must be at least 1")?,
                interval: Duration::from_secs(env.at_least(
                    "IDENTITY_SIGNIN_FAILURE_INTERVAL_S",
                    12,
                    1,
                )?),
            },
            hashing: HashingSettings {
                max_in_flight: env.at_least_as(
                    "IDENTITY_HASHING_MAX_IN_FLIGHT",
                    HashingSettings::default_max_in_flight()
                        .try_into()
                        .unwrap_or(1),
                    1,
                )?,
                queue_wait: env.millis("IDENTITY_HASHING_QUEUE_MS", 1000, 0)?,
            },
        })
    }
}

fn key_source(env: &Env) -> anyhow::Result<KeySource> {
    match (
        env.optional("IDENTITY_SIGNING_KEY_FILES"),
        env.optional("IDENTITY_SIGNING_KEYS"),
    ) {
        (Some(_), Some(_)) => anyhow::bail!(
            "IDENTITY_SIGNING_KEY_FILES and IDENTITY_SIGNING_KEYS are both set: use one"
        ),
        (Some(files), None) => Ok(KeySource::Files(
            files
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(PathBuf::from)
                .collect(),
        )),
        (None, Some(pem)) => Ok(KeySource::Pem(pem)),
        (None, None) => {
            let dir = env.string("DATA_DIR", "./data");
            Ok(KeySource::Generated(
                PathBuf::from(dir).join(GENERATED_KEY_FILE),
            ))
        }
    }
}

/// A JSON setting: the JSON itself, or `@path` to a file holding it.
fn json_setting(env: &Env, name: &str) -> anyhow::Result<Option<String>> {
    let Some(value) = env.optional(name) else {
        return Ok(None);
    };
    match value.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map(Some)
            .with_context(|| format!("{name}: reading {path}")),
        None => Ok(Some(value)),
    }
}

/// `IDENTITY_CLIENTS`. The message never quotes the value: it holds secrets.
fn clients(env: &Env) -> anyhow::Result<Vec<ClientConfig>> {
    match json_setting(env, "IDENTITY_CLIENTS")? {
        Some(json) => ClientConfig::parse_list(&json).context("IDENTITY_CLIENTS"),
        None => Ok(Vec::new()),
    }
}

fn operators(env: &Env) -> anyhow::Result<Vec<Email>> {
    env.optional("IDENTITY_OPERATORS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            Email::parse(e).with_context(|| format!("IDENTITY_OPERATORS: {e:?} is not an email"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let config =
            Config::from(&Env::from_pairs([("DATA_DIR", "/var/lib/shop")])).expect("defaults");
        assert_eq!(config.server.port, 7004);
        assert_eq!(config.issuer, "http://localhost:7004");
        assert_eq!(config.audience, "shop");
        assert_eq!(config.token_ttl, Duration::from_secs(900));
        assert!(config.database.url.ends_with("/identity.db"));
        assert!(matches!(&config.keys, KeySource::Generated(p)
            if p == &PathBuf::from("/var/lib/shop/identity-signing-key.pem")));
        assert!(config.clients.is_empty() && config.operators.is_empty());
        assert_eq!(config.sign_in_throttle.burst.get(), 5);
        assert_eq!(config.sign_in_throttle.interval, Duration::from_secs(12));
        assert!(!config.allow_published_keys);
        assert_eq!(
            config.hashing.max_in_flight,
            HashingSettings::default_max_in_flight()
        );
        assert_eq!(config.hashing.queue_wait, Duration::from_secs(1));
    }

    #[test]
    fn bad_values_name_the_variable_and_hide_secrets() {
        for (name, value) in [
            ("IDENTITY_ISSUER", "localhost"),
            ("ACCESS_TOKEN_TTL_S", "0"),
            ("IDENTITY_SIGNIN_FAILURE_BURST", "0"),
            ("IDENTITY_SIGNIN_FAILURE_INTERVAL_S", "soon"),
            ("IDENTITY_OPERATORS", "root"),
            ("IDENTITY_ALLOW_PUBLISHED_KEYS", "yes"),
            ("IDENTITY_HASHING_MAX_IN_FLIGHT", "0"),
            ("IDENTITY_HASHING_QUEUE_MS", "soon"),
            (
                "IDENTITY_CLIENTS",
                r#"[{"client_id":"a","client_secret":"hunter22","scopes":["x"]}]"#,
            ),
            ("IDENTITY_CLIENTS", "@/no/such/file.json"),
        ] {
            let err = Config::from(&Env::from_pairs([(name, value)])).expect_err(name);
            let message = format!("{err:#}");
            assert!(message.contains(name), "{name}: {message}");
            assert!(!message.contains("hunter22"), "{message}");
        }
        let both = Env::from_pairs([
            ("IDENTITY_SIGNING_KEY_FILES", "a.pem"),
            ("IDENTITY_SIGNING_KEYS", "x"),
        ]);
        assert!(Config::from(&both).is_err());
    }

    #[test]
    fn operators_and_key_files_are_lists() {
        let env = Env::from_pairs([
            ("IDENTITY_OPERATORS", " Ops@Example.com , root@example.com"),
            ("IDENTITY_SIGNING_KEY_FILES", "/k/new.pem, /k/old.pem"),
        ]);
        let config = Config::from(&env).expect("valid");
        assert_eq!(config.operators[0].as_str(), "ops@example.com");
        assert!(matches!(&config.keys, KeySource::Files(f) if f.len() == 2));
    }
}
