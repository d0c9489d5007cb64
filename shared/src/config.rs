//! Typed configuration from environment variables.
//!
//! Every service reads its environment exactly once, at start-up, through an
//! [`Env`]. Each accessor parses and validates one variable and, on a bad
//! value, returns a [`ConfigError`] that names the variable, so that
//! `PORT=abc` or `CHAOS_FAILURE_RATE=1.5` stops the process with a message an
//! operator can act on. Tests never touch the process environment: they build
//! config values in code, or an [`Env`] from a list of pairs.

use std::collections::HashMap;
use std::fmt::Display;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

/// A variable had a value that could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid value {value:?} for {name}: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub value: String,
    pub reason: String,
}

impl ConfigError {
    fn new(name: &str, value: &str, reason: impl Display) -> Self {
        Self {
            name: name.to_owned(),
            value: value.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// Whether `url` starts with `http://` or `https://`: the one check for every
/// URL setting (dependencies, the trace collector, CORS origins).
pub fn is_http_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

fn checked_http_url(name: &str, url: &str) -> Result<String, ConfigError> {
    if is_http_url(url) {
        Ok(url.trim_end_matches('/').to_owned())
    } else {
        Err(ConfigError::new(
            name,
            url,
            "expected an http:// or https:// URL",
        ))
    }
}

/// Why a data file (a catalogue, a price list) was refused.
#[derive(Debug, thiserror::Error)]
pub enum DataFileError {
    #[error("not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Valid JSON that breaks a rule of the data; the text says which.
    #[error("{0}")]
    Invalid(String),
}

/// A source of configuration variables: the process environment, or a map in tests.
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// Snapshot of the process environment.
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    /// An environment made of the given pairs only (for tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// The trimmed value of `name`, or `None` when unset or blank.
    pub fn optional(&self, name: &str) -> Option<String> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// The value of `name`, or `default` when unset or blank.
    pub fn string(&self, name: &str, default: &str) -> String {
        self.optional(name).unwrap_or_else(|| default.to_owned())
    }

    /// An `http://` or `https://` URL, without a trailing slash, or `default`.
    ///
    /// # Errors
    /// When the value is not such a URL.
    pub fn http_url(&self, name: &str, default: &str) -> Result<String, ConfigError> {
        checked_http_url(name, &self.string(name, default))
    }

    /// [`Env::http_url`] for a variable with no default.
    ///
    /// # Errors
    /// When the value is set and is not such a URL.
    pub fn optional_http_url(&self, name: &str) -> Result<Option<String>, ConfigError> {
        self.optional(name)
            .map(|url| checked_http_url(name, &url))
            .transpose()
    }

    /// A data file named by `name`, read and parsed at start-up, or
    /// `default()` when the variable is unset (a service's shipped data).
    ///
    /// # Errors
    /// When the file cannot be read or `parse` refuses it; the message names
    /// the variable and the path.
    pub fn data_file<T, E>(
        &self,
        name: &str,
        default: impl FnOnce() -> T,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> anyhow::Result<T>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        use anyhow::Context;
        let Some(path) = self.optional(name) else {
            return Ok(default());
        };
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("{name}: reading {path}"))?;
        parse(&text).with_context(|| format!("{name}: {path}"))
    }

    /// `name` parsed as `T`, or `default` when unset or blank.
    ///
    /// # Errors
    /// When the value does not parse as `T`.
    pub fn parse<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|e| ConfigError::new(name, &raw, e)),
        }
    }

    /// A TCP port (1-65535; 0 is allowed only in tests that build config in code).
    ///
    /// # Errors
    /// When the value is not a whole number from 1 to 65535.
    pub fn port(&self, name: &str, default: u16) -> Result<u16, ConfigError> {
        let port: u16 = self.parse(name, default)?;
        if port == 0 {
            return Err(ConfigError::new(name, "0", "a port must be 1-65535"));
        }
        Ok(port)
    }

    /// A share from 0 to 1, such as `0.1` for ten per cent.
    ///
    /// # Errors
    /// When the value is not a number from 0 to 1.
    pub fn rate(&self, name: &str) -> Result<f64, ConfigError> {
        let rate: f64 = self.parse(name, 0.0)?;
        if !(0.0..=1.0).contains(&rate) {
            return Err(ConfigError::new(
                name,
                &rate.to_string(),
                "must be a number from 0 to 1",
            ));
        }
        Ok(rate)
    }

    /// A duration given in whole milliseconds.
    ///
    /// # Errors
    /// When the value is not a whole number of milliseconds, or is below `min_ms`.
    pub fn millis(
        &self,
        name: &str,
        default_ms: u64,
        min_ms: u64,
    ) -> Result<Duration, ConfigError> {
        let ms: u64 = self.parse(name, default_ms)?;
        if ms < min_ms {
            return Err(ConfigError::new(
                name,
                &ms.to_string(),
                format_args!("must be at least {min_ms} ms"),
            ));
        }
        Ok(Duration::from_millis(ms))
    }

    /// A comma list of whole milliseconds (`1000,5000,30000`); unset is `default`.
    ///
    /// # Errors
    /// When an entry is not a whole number of milliseconds, or the list is empty.
    pub fn millis_list(
        &self,
        name: &str,
        default: &[Duration],
    ) -> Result<Vec<Duration>, ConfigError> {
        let Some(raw) = self.optional(name) else {
            return Ok(default.to_vec());
        };
        let list = raw
            .split(',')
            .map(|entry| entry.trim().parse::<u64>().map(Duration::from_millis))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ConfigError::new(name, &raw, "expected a comma list of milliseconds"))?;
        if list.is_empty() {
            return Err(ConfigError::new(
                name,
                &raw,
                "expected at least one duration",
            ));
        }
        Ok(list)
    }

    /// A whole number of at least `min`.
    ///
    /// # Errors
    /// When the value is not a whole number, or is below `min`.
    pub fn at_least(&self, name: &str, default: u64, min: u64) -> Result<u64, ConfigError> {
        let n: u64 = self.parse(name, default)?;
        if n < min {
            return Err(ConfigError::new(
                name,
                &n.to_string(),
                format_args!("must be at least {min}"),
            ));
        }
        Ok(n)
    }

    /// [`Env::at_least`], as the type the setting is used as (a count of
    /// workers, a size in bytes).
    ///
    /// # Errors
    /// As [`Env::at_least`], and when the number does not fit in `T`.
    pub fn at_least_as<T: TryFrom<u64>>(
        &self,
        name: &str,
        default: u64,
        min: u64,
    ) -> Result<T, ConfigError> {
        let n = self.at_least(name, default, min)?;
        T::try_from(n).map_err(|_| ConfigError::new(name, &n.to_string(), "too large"))
    }

    /// A quota per minute: unset or blank is `None` (that limit is off); 0 or
    /// anything but a whole number is an error rather than "off", so that a
    /// typo cannot silently lift a limit.
    ///
    /// # Errors
    /// When the value is set and is not a whole number from 1 up.
    pub fn per_minute(&self, name: &str) -> Result<Option<NonZeroU32>, ConfigError> {
        let Some(raw) = self.optional(name) else {
            return Ok(None);
        };
        raw.parse::<NonZeroU32>().map(Some).map_err(|_| {
            ConfigError::new(
                name,
                &raw,
                "expected a whole number of requests per minute, at least 1",
            )
        })
    }

    /// A comma list of networks in CIDR form (`10.0.0.0/8, fd00::/8`); a bare
    /// address is the network of that one address. Unset is the empty list.
    ///
    /// # Errors
    /// When an entry is neither a CIDR network nor an IP address.
    pub fn networks(&self, name: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        let Some(raw) = self.optional(name) else {
            return Ok(Vec::new());
        };
        raw.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError::new(name, entry, "expected a CIDR network such as 10.0.0.0/8")
                    })
            })
            .collect()
    }

    /// A millisecond range such as `100-500`, or a single value such as `200`.
    ///
    /// # Errors
    /// When the value is not `N` or `N-M` with `N <= M`.
    pub fn millis_range(
        &self,
        name: &str,
        default: (u64, u64),
    ) -> Result<(Duration, Duration), ConfigError> {
        let (low, high) = match self.optional(name) {
            None => default,
            Some(raw) => {
                let bad = |reason: &str| ConfigError::new(name, &raw, reason);
                let parse = |s: &str| {
                    s.trim()
                        .parse::<u64>()
                        .map_err(|_| bad("expected N or N-M milliseconds"))
                };
                match raw.split_once('-') {
                    Some((a, b)) => (parse(a)?, parse(b)?),
                    None => {
                        let n = parse(&raw)?;
                        (n, n)
                    }
                }
            }
        };
        if low > high {
            return Err(ConfigError::new(
                name,
                &format!("{low}-{high}"),
                "the lower bound is above the upper bound",
            ));
        }
        Ok((Duration::from_millis(low), Duration::from_millis(high)))
    }
}

/// Output format of the log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl FromStr for LogFormat {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err("expected text or json"),
        }
    }
}

/// Which origins may call the services from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    Any,
    List(Vec<String>),
}

impl FromStr for AllowedOrigins {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let origins: Vec<&str> = s
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .collect();
        if origins.is_empty() || origins.contains(&"*") {
            return Ok(Self::Any);
        }
        for origin in &origins {
            if !is_http_url(origin) {
                return Err(format!(
                    "origin {origin:?} must start with http:// or https://"
                ));
            }
        }
        Ok(Self::List(origins.into_iter().map(str::to_owned).collect()))
    }
}

/// Fault injection, off (all zero) unless configured.
#[derive(Debug, Clone, PartialEq)]
pub struct ChaosConfig {
    /// Share of requests delayed by a random time in `delay`.
    pub delay_rate: f64,
    pub delay: (Duration, Duration),
    /// Share of requests answered with a 500 or 503 problem.
    pub failure_rate: f64,
}

impl ChaosConfig {
    /// No fault injection: what production runs.
    pub fn off() -> Self {
        Self {
            delay_rate: 0.0,
            delay: (Duration::ZERO, Duration::ZERO),
            failure_rate: 0.0,
        }
    }

    pub fn is_off(&self) -> bool {
        self.delay_rate == 0.0 && self.failure_rate == 0.0
    }

    /// # Errors
    /// When a `CHAOS_*` variable is out of range.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            delay_rate: env.rate("CHAOS_DELAY_RATE")?,
            delay: env.millis_range("CHAOS_DELAY_MS", (100, 500))?,
            failure_rate: env.rate("CHAOS_FAILURE_RATE")?,
        })
    }
}

/// A feature switched `on` or `off` (nothing else is accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    On,
    Off,
}

impl Switch {
    pub fn is_on(self) -> bool {
        self == Self::On
    }
}

impl FromStr for Switch {
    type Err = &'static str;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.to_ascii_lowercase().as_str() {
            "on" => Ok(Self::On),
            "off" => Ok(Self::Off),
            _ => Err("expected on or off"),
        }
    }
}

/// Per-caller request quotas (see `crate::rate_limit`), all off unless configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// `RATE_LIMIT_READS_PER_MIN`: GET and HEAD requests per caller.
    pub reads_per_min: Option<NonZeroU32>,
    /// `RATE_LIMIT_WRITES_PER_MIN`: every other method, per caller.
    pub writes_per_min: Option<NonZeroU32>,
    /// `RATE_LIMIT_SIGNIN_PER_MIN`: sign-in routes, per client address.
    pub sign_in_per_min: Option<NonZeroU32>,
    /// `TRUSTED_PROXIES`: peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl RateLimitConfig {
    /// No limits: what tests and a first local run get.
    pub fn off() -> Self {
        Self::default()
    }

    /// # Errors
    /// When a `RATE_LIMIT_*` variable is 0 or not a number, or
    /// `TRUSTED_PROXIES` holds something that is not a network.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            reads_per_min: env.per_minute("RATE_LIMIT_READS_PER_MIN")?,
            writes_per_min: env.per_minute("RATE_LIMIT_WRITES_PER_MIN")?,
            sign_in_per_min: env.per_minute("RATE_LIMIT_SIGNIN_PER_MIN")?,
            trusted_proxies: env.networks("TRUSTED_PROXIES")?,
        })
    }
}

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
    /// service runs (see `crate::chaos`).
    pub chaos_control: Switch,
    pub rate_limits: RateLimitConfig,
    pub log_format: LogFormat,
    /// On SIGTERM, how long readiness answers 503 before the listener closes,
    /// so that load balancers stop sending new requests first.
    pub drain_delay: Duration,
    /// After the listener closes, how long in-flight requests may take to finish.
    pub shutdown_timeout: Duration,
    /// Largest accepted JSON body.
    pub body_limit: usize,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: where to export spans (OTLP over HTTP); off when unset.
    pub otlp_endpoint: Option<String>,
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
            log_format: env.parse("LOG_FORMAT", LogFormat::Text)?,
            drain_delay: env.millis("SHUTDOWN_DRAIN_MS", 1000, 0)?,
            shutdown_timeout: env.millis("SHUTDOWN_TIMEOUT_MS", 20_000, 0)?,
            body_limit: env.at_least_as("BODY_LIMIT_BYTES", 64 * 1024, 1024)?,
            otlp_endpoint: env.optional_http_url("OTEL_EXPORTER_OTLP_ENDPOINT")?,
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
            log_format: LogFormat::Text,
            drain_delay: Duration::ZERO,
            shutdown_timeout: Duration::from_secs(5),
            body_limit: 64 * 1024,
            otlp_endpoint: None,
            auth: AuthConfig::off(),
        }
    }
}

/// How a service checks the bearer tokens sent to it (it is then an OAuth 2.0
/// resource server), and how it gets its own token for the services it calls.
///
/// Everything is off while `AUTH_ISSUER` is unset: tokens are not looked at
/// and every caller is served as before.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `AUTH_ISSUER`: the `iss` tokens must carry, exactly as the provider
    /// writes it (Auth0's ends with a slash, Keycloak's does not).
    pub issuer: Option<String>,
    /// `AUTH_AUDIENCE` (default `shop`): the `aud` tokens must carry.
    pub audience: String,
    /// `AUTH_JWKS_URL`: where the signing keys are; unset = the `jwks_uri` of
    /// the issuer's discovery document.
    pub jwks_url: Option<String>,
    /// `AUTH_REQUIRED` (default false): anonymous callers get 401 where a
    /// route needs a customer (the customer routes, the event stream),
    /// instead of being served as without auth. Routes that need a scope need
    /// a token whenever `issuer` is set, whatever this says (fail closed).
    pub required: bool,
    /// `AUTH_JWKS_REFRESH_MS` (default 30000, at least
    /// [`JWKS_REFRESH_FLOOR_MS`]): the keys are fetched at most this often,
    /// so forged `kid`s cannot hammer the provider; also the shortest time a
    /// fetched key set stands (see [`crate::auth::keys`]).
    pub jwks_refresh: Duration,
    /// `AUTH_CLIENT_ID` and `AUTH_CLIENT_SECRET` (with `AUTH_TOKEN_URL`): this
    /// service's own client credentials, for the calls it makes.
    pub client: Option<ClientCredentials>,
    /// `AUTH_CA_FILE`: CAs trusted for the provider's https URLs besides
    /// Mozilla's roots (a provider behind a private CA).
    pub extra_roots: ExtraRoots,
    /// The issuer's keys handed over in-process instead of fetched: for the
    /// provider itself verifying its own tokens ([`AuthConfig::own_tokens`]).
    /// Never read from the environment.
    pub given_keys: Option<std::sync::Arc<jsonwebtoken::jwk::JwkSet>>,
}

/// The least `AUTH_JWKS_REFRESH_MS`: a smaller one is a start-up error (a
/// forged `kid` per request would otherwise be a fetch per request).
pub const JWKS_REFRESH_FLOOR_MS: u64 = 1000;

impl AuthConfig {
    /// No verification and no credentials: every caller is served.
    pub fn off() -> Self {
        Self {
            issuer: None,
            audience: "shop".into(),
            jwks_url: None,
            required: false,
            jwks_refresh: Duration::from_secs(30),
            client: None,
            extra_roots: ExtraRoots::none(),
            given_keys: None,
        }
    }

    /// The provider's own settings for verifying the tokens it issues with
    /// `keys`: nothing fetched, tokens optional.
    pub fn own_tokens(issuer: &str, audience: &str, keys: jsonwebtoken::jwk::JwkSet) -> Self {
        Self {
            issuer: Some(issuer.to_owned()),
            audience: audience.to_owned(),
            given_keys: Some(std::sync::Arc::new(keys)),
            ..Self::off()
        }
    }

    /// Whether tokens are verified at all.
    pub fn is_on(&self) -> bool {
        self.issuer.is_some()
    }

    /// # Errors
    /// When a URL is not http(s), `AUTH_REQUIRED` is not a boolean or is set
    /// without `AUTH_ISSUER`, only one of the client id and secret is set, or
    /// they are set with neither `AUTH_TOKEN_URL` nor `AUTH_ISSUER`, or
    /// `AUTH_CA_FILE` cannot be read or holds no usable CA certificate, or
    /// `AUTH_JWKS_REFRESH_MS` is under [`JWKS_REFRESH_FLOOR_MS`].
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let issuer = env.optional("AUTH_ISSUER");
        if let Some(issuer) = &issuer
            && !is_http_url(issuer)
        {
            return Err(ConfigError::new(
                "AUTH_ISSUER",
                issuer,
                "not an http(s) URL",
            ));
        }
        let required = env.parse("AUTH_REQUIRED", false)?;
        if required && issuer.is_none() {
            return Err(ConfigError::new(
                "AUTH_REQUIRED",
                "true",
                "needs AUTH_ISSUER: without an issuer no token can be verified",
            ));
        }
        let jwks_url = env.optional_http_url("AUTH_JWKS_URL")?;
        let client = ClientCredentials::from_env(env)?;
        if client.as_ref().is_some_and(|c| c.token_url.is_none()) && issuer.is_none() {
            return Err(ConfigError::new(
                "AUTH_TOKEN_URL",
                "",
                "needed with AUTH_CLIENT_ID when AUTH_ISSUER is unset: no token endpoint to ask",
            ));
        }
        Ok(Self {
            issuer,
            audience: env.string("AUTH_AUDIENCE", "shop"),
            jwks_url,
            required,
            jwks_refresh: env.millis("AUTH_JWKS_REFRESH_MS", 30_000, JWKS_REFRESH_FLOOR_MS)?,
            client,
            extra_roots: match env.optional("AUTH_CA_FILE") {
                Some(path) => ExtraRoots::from_pem_file(std::path::Path::new(&path))
                    .map_err(|reason| ConfigError::new("AUTH_CA_FILE", &path, reason))?,
                None => ExtraRoots::none(),
            },
            given_keys: None,
        })
    }
}

/// CA certificates trusted for https to the OpenID provider, besides the
/// compiled-in Mozilla roots: those of `AUTH_CA_FILE`, read at start-up.
#[derive(Clone)]
pub struct ExtraRoots(rustls::RootCertStore);

impl ExtraRoots {
    /// None: Mozilla's roots only.
    pub fn none() -> Self {
        Self(rustls::RootCertStore::empty())
    }

    /// The certificates of a PEM bundle (other PEM sections are skipped).
    ///
    /// # Errors
    /// When the file cannot be read, is not PEM, or holds no certificate
    /// usable as a trust anchor; the text says which.
    pub fn from_pem_file(path: &std::path::Path) -> Result<Self, String> {
        let pem = std::fs::read(path).map_err(|e| format!("cannot be read: {e}"))?;
        Self::from_pem(&pem)
    }

    /// [`ExtraRoots::from_pem_file`] for a bundle already in memory.
    ///
    /// # Errors
    /// When it is not PEM or holds no certificate usable as a trust anchor.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut store = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("not a PEM bundle: {e}"))?;
            store
                .add(cert)
                .map_err(|e| format!("a certificate cannot be trusted: {e}"))?;
        }
        if store.is_empty() {
            return Err("holds no PEM certificate".into());
        }
        Ok(Self(store))
    }

    /// The trust anchors, for a TLS client.
    pub fn roots(&self) -> &rustls::RootCertStore {
        &self.0
    }
}

/// The certificates themselves are public, but long: only their count.
impl std::fmt::Debug for ExtraRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExtraRoots({} CAs)", self.0.len())
    }
}

/// A client of an OAuth 2.0 token endpoint (`client_credentials` grant).
#[derive(Clone)]
pub struct ClientCredentials {
    /// `AUTH_TOKEN_URL`; unset = the `token_endpoint` of the issuer's discovery document.
    pub token_url: Option<String>,
    pub client_id: String,
    pub client_secret: String,
}

impl ClientCredentials {
    fn from_env(env: &Env) -> Result<Option<Self>, ConfigError> {
        let token_url = env.optional_http_url("AUTH_TOKEN_URL")?;
        match (
            env.optional("AUTH_CLIENT_ID"),
            env.optional("AUTH_CLIENT_SECRET"),
        ) {
            (None, None) => Ok(None),
            (Some(client_id), Some(client_secret)) => Ok(Some(Self {
                token_url,
                client_id,
                client_secret,
            })),
            (Some(_), None) => Err(ConfigError::new(
                "AUTH_CLIENT_SECRET",
                "",
                "needed with AUTH_CLIENT_ID",
            )),
            // The secret is not repeated in the message.
            (None, Some(_)) => Err(ConfigError::new(
                "AUTH_CLIENT_ID",
                "",
                "needed with AUTH_CLIENT_SECRET",
            )),
        }
    }
}

/// The secret stays out of logs and panics.
impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// Events (NATS JetStream): off while `NATS_URL` is unset.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// `NATS_URL`: `nats://host:4222` (a comma list names several servers).
    pub nats_url: Option<String>,
    /// `EVENTS_STREAM_REPLICAS`: copies of each stream (3 on a JetStream cluster).
    pub stream_replicas: usize,
    /// `EVENTS_DUPLICATE_WINDOW_MS`: how long JetStream remembers a `Nats-Msg-Id`.
    pub duplicate_window: Duration,
    /// `EVENTS_MAX_AGE_MS`: how long a stream keeps an event.
    pub max_age: Duration,
    /// `EVENTS_MAX_BYTES`: the most a stream holds before dropping its oldest events.
    pub max_bytes: i64,
    /// `EVENTS_OUTBOX_RETENTION_MS`: how long a sent outbox row (and a handled
    /// inbox row) is kept before it is pruned.
    pub outbox_retention: Duration,
    /// `EVENTS_RELAY_INTERVAL_MS`: how often the relay looks at the outbox when
    /// nothing woke it (a commit in this process wakes it at once).
    pub relay_interval: Duration,
    /// `EVENTS_RELAY_LINGER_MS`: after a commit wakes the relay, how long it
    /// waits for more before its round (more events per round, fewer writes).
    pub relay_linger: Duration,
    /// `EVENTS_RELAY_BATCH`: outbox rows published per round.
    pub relay_batch: usize,
    /// `EVENTS_MAX_DELIVER`: deliveries of one event before it is a dead letter.
    pub max_deliver: i64,
    /// `EVENTS_REDELIVERY_BACKOFF_MS`: the waits before each redelivery
    /// (comma list; the last one repeats).
    pub redelivery_backoff: Vec<Duration>,
    /// `EVENTS_ACK_WAIT_MS`: how long a consumer may hold an event unacknowledged
    /// (a crashed consumer's events come back after this).
    pub ack_wait: Duration,
    /// `EVENTS_STREAMS_PER_CALLER`: live-feed streams one caller (token
    /// subject, else client address) may hold open at once.
    pub streams_per_caller: usize,
}

impl EventsConfig {
    /// Events off.
    pub fn off() -> Self {
        Self {
            nats_url: None,
            stream_replicas: 1,
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 1 << 30,
            outbox_retention: Duration::from_secs(24 * 3600),
            relay_interval: Duration::from_millis(500),
            relay_linger: Duration::from_millis(10),
            relay_batch: 256,
            max_deliver: 5,
            redelivery_backoff: vec![
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(30),
            ],
            ack_wait: Duration::from_secs(30),
            streams_per_caller: 4,
        }
    }

    /// Whether events are on (`NATS_URL` set).
    pub fn is_on(&self) -> bool {
        self.nats_url.is_some()
    }

    /// # Errors
    /// When `NATS_URL` is not a `nats://` (or `tls://`) URL list, or an
    /// `EVENTS_*` variable has a bad value.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let off = Self::off();
        let nats_url = match env.optional("NATS_URL") {
            None => None,
            Some(raw) => {
                let good = raw
                    .split(',')
                    .map(str::trim)
                    .all(|url| url.starts_with("nats://") || url.starts_with("tls://"));
                if !good {
                    return Err(ConfigError::new(
                        "NATS_URL",
                        "<hidden>",
                        "expected nats://host:port (a comma list for several servers)",
                    ));
                }
                Some(raw)
            }
        };
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Ok(Self {
            nats_url,
            stream_replicas: env.at_least_as("EVENTS_STREAM_REPLICAS", 1, 1)?,
            duplicate_window: env.millis(
                "EVENTS_DUPLICATE_WINDOW_MS",
                ms(off.duplicate_window),
                1000,
            )?,
            max_age: env.millis("EVENTS_MAX_AGE_MS", ms(off.max_age), 1000)?,
            max_bytes: env.at_least_as("EVENTS_MAX_BYTES", 1 << 30, 1 << 20)?,
            outbox_retention: env.millis(
                "EVENTS_OUTBOX_RETENTION_MS",
                ms(off.outbox_retention),
                1000,
            )?,
            relay_interval: env.millis("EVENTS_RELAY_INTERVAL_MS", ms(off.relay_interval), 10)?,
            relay_linger: env.millis("EVENTS_RELAY_LINGER_MS", ms(off.relay_linger), 0)?,
            relay_batch: env.at_least_as("EVENTS_RELAY_BATCH", 256, 1)?,
            max_deliver: env.at_least_as("EVENTS_MAX_DELIVER", 5, 2)?,
            redelivery_backoff: env
                .millis_list("EVENTS_REDELIVERY_BACKOFF_MS", &off.redelivery_backoff)?,
            ack_wait: env.millis("EVENTS_ACK_WAIT_MS", ms(off.ack_wait), 100)?,
            streams_per_caller: env.at_least_as("EVENTS_STREAMS_PER_CALLER", 4, 1)?,
        })
    }

    /// The wait before redelivering an event delivered `deliveries` times.
    pub fn backoff_after(&self, deliveries: i64) -> Duration {
        let index = usize::try_from(deliveries.saturating_sub(1)).unwrap_or(0);
        self.redelivery_backoff
            .get(index)
            .or(self.redelivery_backoff.last())
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }
}

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
    fn defaults_apply_when_variables_are_unset() {
        let config =
            ServerConfig::from_env(&Env::from_pairs([]), 7001).expect("defaults are valid");
        assert_eq!(config.port, 7001);
        assert_eq!(config.host, "0.0.0.0");
        assert!(config.chaos.is_off());
        assert_eq!(config.chaos_control, Switch::Off);
        assert_eq!(config.allowed_origins, AllowedOrigins::Any);
        assert_eq!(config.log_format, LogFormat::Text);
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
    fn streams_per_caller_default_to_four_and_take_no_zero() {
        let events =
            |pairs: &[(&str, &str)]| EventsConfig::from_env(&Env::from_pairs(pairs.to_vec()));
        assert_eq!(events(&[]).expect("defaults").streams_per_caller, 4);
        let set = events(&[("EVENTS_STREAMS_PER_CALLER", "2")]).expect("valid");
        assert_eq!(set.streams_per_caller, 2);
        assert!(events(&[("EVENTS_STREAMS_PER_CALLER", "0")]).is_err());
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
