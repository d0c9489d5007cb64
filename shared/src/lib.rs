//! Plumbing shared by the inventory, pricing and order services.
//!
//! Nothing in here knows about items, prices or orders: it is the part of a
//! service that every service needs and that should read the same everywhere.
//!
//! # Layout
//!
//! - [`config`]: typed configuration from environment variables; a bad value
//!   stops start-up with a message naming the variable.
//! - [`server`]: the one HTTP server bootstrap (middleware stack, error
//!   handlers, health routes, graceful shutdown) that all services call.
//! - [`problem`]: RFC 9457 `application/problem+json` errors, and the handlers
//!   that turn framework rejections (bad JSON, 404, 405, 413, 415) into them.
//! - [`request_id`]: `X-Request-Id` accepted or generated, echoed, and made
//!   available to handlers so that downstream calls forward it.
//! - [`telemetry`]: `tracing` set-up (`RUST_LOG`, `LOG_FORMAT=json`) and the
//!   per-request root span.
//! - [`health`]: `/health`, `/health/live`, `/health/ready` and the draining flag.
//! - [`healthcheck`]: the `healthcheck` subcommand for images without a shell.
//! - [`auth`]: the `SERVICE_TOKEN` bearer check between services.
//! - [`breaker`]: the circuit breaker, with an injectable clock.
//! - [`chaos`]: fault injection (`CHAOS_*`), off unless configured.
//! - [`cors`]: CORS from `CORS_ALLOWED_ORIGINS`.
//! - [`db`]: the sqlx pool for SQLite (default) or PostgreSQL.
//! - [`lines`]: sku lines with quantities, their limits, and the `skus`/`items` shape.
//! - [`metrics`]: the per-process Prometheus registry and the HTTP metrics.
//! - [`money`]: integer minor units, rendered as decimals only at the edge.
//! - [`periodic`]: the loop behind every background task, stopped by draining.
//! - [`openapi`]: the `GET /openapi.json` description, generated from the routes.
//! - [`timestamp`]: wall-clock milliseconds and their RFC 3339 form.
//! - [`validate`]: identifier checks shared by the domain types.
//! - `testing` (feature `testing`): helpers for the services' integration tests.

pub mod auth;
pub mod breaker;
pub mod chaos;
pub mod config;
pub mod cors;
pub mod db;
pub mod health;
pub mod healthcheck;
pub mod lines;
pub mod metrics;
pub mod money;
pub mod openapi;
pub mod periodic;
pub mod problem;
pub mod request_id;
pub mod server;
pub mod sku;
pub mod telemetry;
pub mod timestamp;
pub mod validate;

#[cfg(feature = "testing")]
pub mod testing;
