//! The HTTP plumbing every service has, whatever it serves: errors, health,
//! the API description, request ids, the access log, metrics, tracing, CORS,
//! and the request's deadline as it arrives.
//!
//! It owns the shape of a service's edge (problem bodies, probe paths,
//! `/metrics`, `/openapi.json`) and the small leaves every service needs
//! (the clock, page sizes, identifier checks). It knows nothing of tokens,
//! quotas, faults, databases or events (the `shared-auth`,
//! `shared-rate-limit`, `shared-chaos`, `shared-db` and `shared-events` crates
//! build on it), and no business words: no items, prices or orders.
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
//! - [`request_id`]: the `X-Request-Id` middleware: the id accepted or
//!   generated, echoed, and made available to handlers and problem bodies.
//! - [`validate`]: identifier checks shared by the domain types.
//! - [`timestamp`]: wall-clock milliseconds and their RFC 3339 form.
//! - [`paging`]: page sizes for listings (`?limit=`: default, largest, and
//!   the change-history query that refuses a limit outside them).
//!
//! Errors and process set-up:
//!
//! - [`problem`] (request_id): RFC 9457 `application/problem+json` errors, and
//!   the handlers that turn framework rejections (bad JSON, 404, 405, 413,
//!   415) into them.
//! - [`metrics`] (problem): the per-process Prometheus registry, the HTTP
//!   metrics (problems counted by code) and the middleware that records them.
//! - [`telemetry`]: `tracing` set-up (`RUST_LOG`, `LOG_FORMAT=json`,
//!   OTLP export) and `traceparent` propagation.
//! - [`healthcheck`] (paths): the `healthcheck` subcommand for images
//!   without a shell.
//! - [`cors`]: CORS from `CORS_ALLOWED_ORIGINS`.
//! - [`deadline`] (paths, problem): `X-Request-Timeout-Ms`: the request's
//!   [`deadline::Deadline`], read as it arrives and enforced before the
//!   handler starts (504 `deadline_exceeded`).
//!
//! What the services register and the middleware around them:
//!
//! - [`openapi`] (paths, service, metrics, problem): the `GET /openapi.json`
//!   description, generated from the routes.
//! - [`access_log`] (paths, service, request_id, telemetry, problem): the per-request
//!   `request` span and the access line with its latency.
//! - [`health`] (paths, service, problem, openapi): `/health`, `/health/live`,
//!   `/health/ready`, the checks behind them and the draining flag.
//! - [`periodic`] (health): the loop behind every background task, stopped by
//!   draining.
//!
//! Doc comments may point anywhere (a leaf may say who calls it); code only
//! points up this list.

pub mod access_log;
pub mod cors;
pub mod deadline;
pub mod health;
pub mod healthcheck;
pub mod metrics;
pub mod openapi;
pub mod paging;
pub mod paths;
pub mod periodic;
pub mod problem;
pub mod request_id;
pub mod service;
pub mod telemetry;
pub mod timestamp;
pub mod validate;

#[cfg(test)]
mod layering;
