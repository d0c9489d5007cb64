//! The order service through its HTTP interface, against real inventory and
//! pricing servers that the tests stop, slow down and restart.

mod auth;
mod balancing;
mod bulkheads;
mod consumers;
mod deadlines;
mod durability;
mod events;
mod helpers;
mod history;
mod live;
mod live_access;
mod live_feed;
mod metrics;
mod mixed_versions;
mod openapi;
mod orders;
mod outage;
mod proxy;
mod replicas;
mod resilience;
mod retries;
mod telemetry;
