//! Plumbing shared by the inventory, pricing and order services.
//!
//! Nothing in here knows about items, prices or orders: it is the part of a
//! service that every service needs and that should read the same everywhere.
//!
//! # Layout
//!
//! The modules, bottom-up: each one uses only modules listed above it (named
//! in brackets), so the crate reads from the top of this list down and has no
//! cycles. The `layering` unit test holds the code to this order.
//!
//! Leaves, which use no other module:
//!
//! - [`paths`]: the paths the plumbing serves (`/health`, `/health/live`,
//!   `/health/ready`, `/metrics`, `/openapi.json`) and which of them are probes.
//! - [`service`]: [`service::ServiceInfo`], the running service's name and version.
//! - [`config`]: typed configuration from environment variables; a bad value
//!   stops start-up with a message naming the variable.
//! - [`request_id`]: the `X-Request-Id` middleware: the id accepted or
//!   generated, echoed, and made available to handlers and problem bodies.
//! - [`metrics`]: the per-process Prometheus registry, the HTTP metrics and
//!   the middleware that records them.
//! - [`validate`]: identifier checks shared by the domain types.
//! - [`money`]: integer minor units, rendered as decimals only at the edge.
//! - [`timestamp`]: wall-clock milliseconds and their RFC 3339 form.
//! - [`paging`]: page sizes for listings (`?limit=`: default, largest, and
//!   the change-history query that refuses a limit outside them).
//! - [`read_cache`]: an in-process cache of rows read far more often than
//!   they change, forgotten at once on the process's own writes.
//! - [`batch`]: calls made at the same moment sent as one, without waiting
//!   for a batch to fill ("smart batching").
//!
//! Errors and process set-up:
//!
//! - [`problem`] (request_id): RFC 9457 `application/problem+json` errors, and
//!   the handlers that turn framework rejections (bad JSON, 404, 405, 413,
//!   415) into them.
//! - [`telemetry`] (config): `tracing` set-up (`RUST_LOG`, `LOG_FORMAT=json`,
//!   OTLP export) and `traceparent` propagation.
//! - [`healthcheck`] (config, paths): the `healthcheck` subcommand for images
//!   without a shell.
//! - [`cors`] (config): CORS from `CORS_ALLOWED_ORIGINS`.
//! - [`breaker`] (metrics, problem, timestamp): the circuit breaker, with an
//!   injectable clock.
//! - [`bulkhead`] (metrics): limits on work in flight that refuse at once
//!   instead of queueing.
//! - [`retry`] (config, breaker): retries within a budget (the Finagle /
//!   tower model), jittered exponential backoff, `Retry-After`.
//! - [`deadline`] (paths, problem): `X-Request-Timeout-Ms`: the request's
//!   [`deadline::Deadline`], read as it arrives and enforced before the
//!   handler starts (504 `deadline_exceeded`).
//!
//! What the services register and the middleware around them:
//!
//! - [`openapi`] (paths, service, metrics, problem): the `GET /openapi.json`
//!   description, generated from the routes.
//! - [`sku`] (validate, openapi): the stock-keeping unit all services share.
//! - [`lines`] (sku): sku lines with quantities, their limits, and the
//!   `skus`-or-`items` request shape.
//! - [`auth`] (config, paths, metrics, problem): who is calling (a verified bearer
//!   token, the `SERVICE_TOKEN`, or nobody) and the scope checks on it; the
//!   service's own token for its calls (client credentials); the https
//!   client (rustls) that fetches keys and tokens from the provider.
//! - [`chaos`] (config, paths, problem, openapi, auth, timestamp): fault
//!   injection (`CHAOS_*`), off unless configured, and with `CHAOS_CONTROL=on`
//!   its live control at `GET/PUT /admin/chaos`.
//! - [`access_log`] (paths, service, request_id, telemetry): the per-request
//!   `request` span and the access line with its latency.
//! - [`health`] (paths, service, problem, openapi): `/health`, `/health/live`,
//!   `/health/ready`, the checks behind them and the draining flag.
//! - [`db`] (config, health, timestamp): the sqlx pool for SQLite (default) or
//!   PostgreSQL.
//! - [`periodic`] (health): the loop behind every background task, stopped by
//!   draining.
//! - [`rate_limit`] (config, health, metrics, paths, periodic, problem, auth):
//!   per-caller quotas (`RATE_LIMIT_*`, `TRUSTED_PROXIES`), off unless
//!   configured, with the `RateLimit` headers and 429 past them.
//! - [`events`] (config, health, metrics, db, periodic, telemetry, timestamp,
//!   rate_limit): events through NATS JetStream (`NATS_URL`): the CloudEvents envelope,
//!   the transactional outbox and its relay, durable consumers with an inbox
//!   and dead letters, and the live feed as Server-Sent Events (a few
//!   streams per caller, whom rate_limit names).
//!
//! The top, which puts the rest together:
//!
//! - [`server`] (most of the above): the one HTTP server bootstrap (middleware
//!   stack, error handlers, health routes, graceful shutdown) that all services call.
//! - `testing` (config, telemetry, problem, paths, server; feature `testing`):
//!   helpers for the services' integration tests. The feature also compiles
//!   the test-only constructors elsewhere: `ServerConfig::for_tests`,
//!   `DatabaseConfig::sqlite_file` and the breaker's `ManualClock`.
//!
//! Doc comments may point anywhere (a leaf may say who calls it); code only
//! points up this list.

pub mod access_log;
pub mod auth;
pub mod batch;
pub mod breaker;
pub mod bulkhead;
pub mod chaos;
pub mod config;
pub mod cors;
pub mod db;
pub mod deadline;
pub mod events;
pub mod health;
pub mod healthcheck;
pub mod lines;
pub mod metrics;
pub mod money;
pub mod openapi;
pub mod paging;
pub mod paths;
pub mod periodic;
pub mod problem;
pub mod rate_limit;
pub mod read_cache;
pub mod request_id;
pub mod retry;
pub mod server;
pub mod service;
pub mod sku;
pub mod telemetry;
pub mod timestamp;
pub mod validate;

#[cfg(feature = "testing")]
pub mod testing;

#[cfg(test)]
mod layering;
