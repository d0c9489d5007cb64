//! The identity service: accounts, sign-in, and the access tokens the other
//! services verify.
//!
//! People sign up (`POST /accounts`) and sign in (`POST /sessions`) with an
//! email and a password (argon2id); services get tokens with the OAuth client
//! credentials grant (`POST /token`). Tokens are ES256 JWTs; the public keys
//! and the discovery document are served under `/.well-known/`. Failed
//! sign-ins are throttled per email, always.
//!
//! # Layout
//! - [`config`]: environment -> [`config::Config`].
//! - [`domain`]: validated types (`Email`, `Password`, `Scope`, …).
//! - [`passwords`]: argon2id hashing and verification.
//! - [`hashing`]: the bounded pool requests hash on (503 `busy` beyond it).
//! - [`keys`]: signing keys (loaded or generated) and their JWKs.
//! - [`tokens`]: signing access tokens.
//! - [`clients`]: OAuth clients and HTTP Basic authentication.
//! - [`throttle`]: the per-email sign-in throttle.
//! - [`seed`]: accounts provisioned by configuration (operators).
//! - [`store`]: all SQL, behind domain-level methods.
//! - [`metrics`]: accounts, sign-ins by outcome, tokens by grant.
//! - [`error`]: the error enum and its problem+json (and RFC 6749) mapping.
//! - [`routes`]: handlers and the route table.
//! - [`startup`]: wiring it all into a running server.

pub mod clients;
pub mod config;
pub mod domain;
pub mod error;
pub mod hashing;
pub mod keys;
pub mod metrics;
pub mod passwords;
pub mod routes;
pub mod seed;
pub mod startup;
pub mod store;
pub mod throttle;
pub mod tokens;
