//! The `CHAOS_*` settings.

use std::time::Duration;

use shared_config::{ConfigError, Env};

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
