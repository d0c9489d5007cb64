//! Which service is running: its name, version and start time.
//!
//! `shared_server::start` registers the [`ServiceInfo`] as app data; the
//! health summary, the API description and the `request` span read it there.

use std::time::Instant;

/// Name, version and start time of the running service.
#[derive(Debug, Clone)]
pub struct ServiceInfo {
    /// The service's name (`inventory`, …), as logs, metrics and `/health` show it.
    pub name: &'static str,
    /// The crate version, usually `env!("CARGO_PKG_VERSION")`.
    pub version: &'static str,
    /// When this value was made, for `/health`'s uptime.
    pub started: Instant,
}

impl ServiceInfo {
    /// The info of a service starting now.
    pub fn new(name: &'static str, version: &'static str) -> Self {
        Self {
            name,
            version,
            started: Instant::now(),
        }
    }
}
