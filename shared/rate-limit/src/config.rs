//! The `RATE_LIMIT_*` and `TRUSTED_PROXIES` settings.

use std::num::NonZeroU32;

use shared_config::{ConfigError, Env};

/// Per-caller request quotas (see `crate`), all off unless configured.
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
