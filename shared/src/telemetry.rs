//! Logging through `tracing`, set up once, first thing in `main`.
//!
//! `RUST_LOG` filters as `env_logger` does (default `info`); `LOG_FORMAT=json`
//! writes one JSON object per line with the fields of the enclosing `request`
//! span (request id, method, route, status); records from crates that use the
//! `log` facade are bridged into the same output.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;

use crate::config::LogFormat;

/// Installs the global subscriber. Later calls (tests) are no-ops.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_target(true);
    // `try_init` also installs the `log` -> `tracing` bridge.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}
