//! Pricing through its HTTP interface, on a real socket and a real database.

mod chaos_control;
mod events;
mod helpers;
mod management;
mod metrics;
mod openapi;
mod plumbing;
mod prices;
