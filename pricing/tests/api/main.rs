//! Pricing through its HTTP interface, on a real socket.

mod helpers;
mod plumbing;
mod prices;
