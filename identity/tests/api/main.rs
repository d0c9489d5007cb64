//! Identity through its HTTP interface, on a real socket and a real database.

mod accounts;
mod binary;
mod brute_force;
mod chaos;
mod discovery;
mod helpers;
mod keys;
mod metrics;
mod openapi;
mod sessions;
mod token;
