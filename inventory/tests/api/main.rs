//! Inventory through its HTTP interface, on a real socket and a real database.

mod auth;
mod auth_keys;
mod catalogue;
mod connections;
mod deadlines;
mod events;
mod full_disk;
mod helpers;
mod items;
mod openapi;
mod reservations;
mod startup;
