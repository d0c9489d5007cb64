//! Inventory through its HTTP interface, on a real socket and a real database.

mod helpers;
mod items;
mod reservations;
mod startup;
