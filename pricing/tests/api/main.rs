//! Pricing through its HTTP interface, on a real socket.

mod helpers;
mod metrics;
mod openapi;
mod plumbing;
mod prices;
