//! Identity through its HTTP interface, on a real socket and a real database.

mod accounts;
mod binary;
mod brute_force;
mod chaos;
mod discovery;
mod hashing;
mod helpers;
mod keys;
mod metrics;
mod openapi;
mod operators;
mod outage;
mod rate_limit;
mod sessions;
mod token;
