//! What every service's HTTP server needs: the settings of the crates it puts together.

use std::time::Duration;

use shared_auth::AuthConfig;
use shared_chaos::ChaosConfig;
use shared_config::{ConfigError, Env, Switch};
use shared_http::cors::AllowedOrigins;
use shared_http::telemetry::TelemetryConfig;
use shared_rate_limit::RateLimitConfig;

/// What every service's HTTP server needs, whatever the service.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    /// 0 binds a free port (tests).
    pub port: u16,
    /// Worker threads; `None` is one per core.
    pub workers: Option<usize>,
    pub allowed_origins: AllowedOrigins,
    pub chaos: ChaosConfig,
    /// `CHAOS_CONTROL` (`on`|`off`, default off): whether `GET/PUT
    /// /admin/chaos` exist, so that the `chaos` settings can change while the
    /// service runs (see `shared_chaos`).
    pub chaos_control: Switch,
    pub rate_limits: RateLimitConfig,
    /// `LOG_FORMAT` and `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub telemetry: TelemetryConfig,
    /// On SIGTERM, how long readiness answers 503 before the listener closes,
    /// so that load balancers stop sending new requests first.
    pub drain_delay: Duration,
    /// After the listener closes, how long in-flight requests may take to finish.
    pub shutdown_timeout: Duration,
    /// Largest accepted JSON body.
    pub body_limit: usize,
    /// Bearer-token verification (`AUTH_*`); off while `AUTH_ISSUER` is unset.
    pub auth: AuthConfig,
}

impl ServerConfig {
    /// # Errors
    /// When `HOST`, `PORT`, `WORKERS`, `CORS_ALLOWED_ORIGINS`, `LOG_FORMAT`,
    /// `SHUTDOWN_DRAIN_MS`, `SHUTDOWN_TIMEOUT_MS`, `BODY_LIMIT_BYTES`,
    /// `TRUSTED_PROXIES` or a `CHAOS_*` (`CHAOS_CONTROL` included) or
    /// `RATE_LIMIT_*` variable has a bad value.
    pub fn from_env(env: &Env, default_port: u16) -> Result<Self, ConfigError> {
        let workers = match env.optional("WORKERS") {
            None => None,
            Some(_) => Some(env.at_least_as("WORKERS", 1, 1)?),
        };
        Ok(Self {
            host: env.string("HOST", "0.0.0.0"),
            port: env.port("PORT", default_port)?,
            workers,
            allowed_origins: env.parse("CORS_ALLOWED_ORIGINS", AllowedOrigins::Any)?,
            chaos: ChaosConfig::from_env(env)?,
            chaos_control: env.parse("CHAOS_CONTROL", Switch::Off)?,
            rate_limits: RateLimitConfig::from_env(env)?,
            telemetry: TelemetryConfig::from_env(env)?,
            drain_delay: env.millis("SHUTDOWN_DRAIN_MS", 1000, 0)?,
            shutdown_timeout: env.millis("SHUTDOWN_TIMEOUT_MS", 20_000, 0)?,
            body_limit: env.at_least_as("BODY_LIMIT_BYTES", 64 * 1024, 1024)?,
            auth: AuthConfig::from_env(env)?,
        })
    }

    /// Loopback, a free port, two workers, no chaos and no drain delay: what tests use.
    #[cfg(feature = "testing")]
    pub fn for_tests() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 0,
            workers: Some(2),
            allowed_origins: AllowedOrigins::Any,
            chaos: ChaosConfig::off(),
            chaos_control: Switch::Off,
            rate_limits: RateLimitConfig::off(),
            telemetry: TelemetryConfig::off(),
            drain_delay: Duration::ZERO,
            shutdown_timeout: Duration::from_secs(5),
            body_limit: 64 * 1024,
            auth: AuthConfig::off(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    use shared_http::telemetry::LogFormat;

    #[test]
    fn defaults_apply_when_variables_are_unset() {
        let config =
            ServerConfig::from_env(&Env::from_pairs([]), 7001).expect("defaults are valid");
        assert_eq!(config.port, 7001);
        assert_eq!(config.host, "0.0.0.0");
        assert!(config.chaos.is_off());
        assert_eq!(config.chaos_control, Switch::Off);
        assert_eq!(config.allowed_origins, AllowedOrigins::Any);
        assert_eq!(config.telemetry.log_format, LogFormat::Text);
        assert_eq!(config.rate_limits, RateLimitConfig::off());
    }

    #[test]
    fn rate_limits_and_trusted_proxies_parse() {
        let env = Env::from_pairs([
            ("RATE_LIMIT_READS_PER_MIN", "1200"),
            ("RATE_LIMIT_SIGNIN_PER_MIN", " 20 "),
            ("TRUSTED_PROXIES", "172.16.0.0/12, fd00::/8,10.1.2.3"),
        ]);
        let limits = ServerConfig::from_env(&env, 1).expect("valid").rate_limits;
        assert_eq!(limits.reads_per_min, NonZeroU32::new(1200));
        assert_eq!(limits.writes_per_min, None, "unset is off");
        assert_eq!(limits.sign_in_per_min, NonZeroU32::new(20));
        let trusted: Vec<String> = limits
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(trusted, ["172.16.0.0/12", "fd00::/8", "10.1.2.3/32"]);
    }

    #[test]
    fn a_jwks_refresh_under_the_floor_stops_start_up_naming_it() {
        let refresh = |ms: &str| {
            AuthConfig::from_env(&Env::from_pairs([
                ("AUTH_ISSUER", "https://id.example"),
                ("AUTH_JWKS_REFRESH_MS", ms),
            ]))
        };
        for ms in ["0", "999"] {
            let err = refresh(ms).expect_err(ms);
            assert_eq!(err.name, "AUTH_JWKS_REFRESH_MS", "{err}");
        }
        let config = refresh("1000").expect("the floor itself");
        assert_eq!(config.jwks_refresh, Duration::from_secs(1));
    }

    #[test]
    fn https_providers_are_accepted() {
        let auth = |pairs: &[(&str, &str)]| AuthConfig::from_env(&Env::from_pairs(pairs.to_vec()));
        let config = auth(&[("AUTH_ISSUER", "https://id.example/")]).expect("https discovery");
        assert_eq!(config.issuer.as_deref(), Some("https://id.example/"));
        let config = auth(&[
            ("AUTH_ISSUER", "https://id.example"),
            ("AUTH_JWKS_URL", "https://id.example/jwks"),
            ("AUTH_CLIENT_ID", "order"),
            ("AUTH_CLIENT_SECRET", "s3cret"),
            ("AUTH_TOKEN_URL", "https://id.example/token"),
        ])
        .expect("https keys and tokens");
        assert_eq!(config.jwks_url.as_deref(), Some("https://id.example/jwks"));
        assert_eq!(config.extra_roots.roots().len(), 0, "Mozilla's roots only");
    }

    #[test]
    fn a_bad_ca_file_names_the_variable() {
        let dir = std::env::temp_dir().join(format!("ca-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "hello").expect("writing a file");
        let bad_body = dir.join("bad.pem");
        std::fs::write(
            &bad_body,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .expect("writing a file");
        let missing = dir.join("missing.pem");
        for path in [&not_pem, &bad_body, &missing] {
            let path = path.to_str().expect("a UTF-8 path");
            let err =
                AuthConfig::from_env(&Env::from_pairs([("AUTH_CA_FILE", path)])).expect_err(path);
            assert_eq!(err.name, "AUTH_CA_FILE", "{err}");
        }
        std::fs::remove_dir_all(&dir).expect("cleaning up");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases = [
            ("PORT", "abc"),
            ("PORT", "0"),
            ("PORT", "70000"),
            ("CHAOS_FAILURE_RATE", "1.5"),
            ("CHAOS_DELAY_RATE", "-0.1"),
            ("CHAOS_DELAY_MS", "500-100"),
            ("CHAOS_DELAY_MS", "fast"),
            ("CHAOS_CONTROL", "yes"),
            ("LOG_FORMAT", "xml"),
            ("CORS_ALLOWED_ORIGINS", "example.com"),
            ("WORKERS", "0"),
            ("RATE_LIMIT_READS_PER_MIN", "0"),
            ("RATE_LIMIT_WRITES_PER_MIN", "many"),
            ("RATE_LIMIT_SIGNIN_PER_MIN", "-5"),
            ("TRUSTED_PROXIES", "10.0.0.0/33"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, gateway"),
        ];
        for (name, value) in cases {
            let err = ServerConfig::from_env(&Env::from_pairs([(name, value)]), 7001)
                .expect_err(&format!("{name}={value} should be rejected"));
            assert_eq!(err.name, name, "{name}={value}");
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn chaos_and_origins_parse() {
        let env = Env::from_pairs([
            ("CHAOS_DELAY_RATE", "0.1"),
            ("CHAOS_DELAY_MS", "100-500"),
            ("CHAOS_FAILURE_RATE", "0.25"),
            ("CHAOS_CONTROL", "on"),
            ("CORS_ALLOWED_ORIGINS", "http://a.test, https://b.test"),
        ]);
        let config = ServerConfig::from_env(&env, 1).expect("valid");
        assert_eq!(config.chaos.delay_rate, 0.1);
        assert_eq!(
            config.chaos.delay,
            (Duration::from_millis(100), Duration::from_millis(500))
        );
        assert_eq!(config.chaos.failure_rate, 0.25);
        assert!(config.chaos_control.is_on());
        assert_eq!(
            config.allowed_origins,
            AllowedOrigins::List(vec!["http://a.test".into(), "https://b.test".into()])
        );
    }

    #[test]
    fn client_credentials_need_a_token_endpoint_and_keep_the_secret_quiet() {
        let secret = ("AUTH_CLIENT_SECRET", "s3cret");
        let id = ("AUTH_CLIENT_ID", "order");
        let err = AuthConfig::from_env(&Env::from_pairs([id, secret])).expect_err("no endpoint");
        assert_eq!(err.name, "AUTH_TOKEN_URL");
        for env in [
            Env::from_pairs([id, secret, ("AUTH_TOKEN_URL", "http://idp.test/token")]),
            Env::from_pairs([id, secret, ("AUTH_ISSUER", "http://idp.test")]),
        ] {
            let config = AuthConfig::from_env(&env).expect("an endpoint is known");
            let client = config.client.expect("credentials");
            assert_eq!(client.client_secret, "s3cret");
            assert!(!format!("{client:?}").contains("s3cret"));
        }
        let err = AuthConfig::from_env(&Env::from_pairs([secret])).expect_err("no id");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
