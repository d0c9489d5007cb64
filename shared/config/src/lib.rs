//! Typed configuration from environment variables.
//!
//! Every service reads its environment exactly once, at start-up, through an
//! [`Env`]. Each accessor parses and validates one variable and, on a bad
//! value, returns a [`ConfigError`] that names the variable, so that
//! `PORT=abc` or `CHAOS_FAILURE_RATE=1.5` stops the process with a message an
//! operator can act on. Tests never touch the process environment: they build
//! config values in code, or an [`Env`] from a list of pairs.
//!
//! Owns: the `Env` reader, `ConfigError`, `Switch`. Each crate's settings
//! struct lives in that crate and reads through this one; this crate knows
//! no setting by name and depends on no other crate of the workspace.

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
    /// The error for `name` set to `value`, refused for `reason`.
    pub fn new(name: &str, value: &str, reason: impl Display) -> Self {
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
