//! Access tokens: ES256 JWTs signed with the current key.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use jsonwebtoken::{Algorithm, Header};
use serde::Serialize;

use crate::domain::Scopes;
use crate::keys::KeySet;

/// The claims of every access token (the contract's list).
#[derive(Debug, Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    exp: u64,
    iat: u64,
    nbf: u64,
    jti: String,
    scope: String,
}

/// A signed token and how long it lasts.
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: u64,
}

/// Signs tokens for this issuer and audience.
pub struct TokenIssuer {
    keys: KeySet,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl TokenIssuer {
    pub fn new(keys: KeySet, issuer: String, audience: String, ttl: Duration) -> Self {
        Self {
            keys,
            issuer,
            audience,
            ttl,
        }
    }

    /// The `iss` of the tokens, and the base of the discovery URLs.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// A token for `subject` carrying `scopes`.
    ///
    /// # Errors
    /// When the clock is before 1970 or signing fails.
    pub fn issue(&self, subject: &str, scopes: &Scopes) -> anyhow::Result<IssuedToken> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("the clock is before 1970")?
            .as_secs();
        let key = self.keys.current();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid().to_owned());
        let claims = Claims {
            iss: &self.issuer,
            aud: &self.audience,
            sub: subject,
            exp: now + self.ttl.as_secs(),
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            scope: scopes.to_claim(),
        };
        let access_token = jsonwebtoken::encode(&header, &claims, key.encoding_key())
            .context("signing a token")?;
        Ok(IssuedToken {
            access_token,
            expires_in: self.ttl.as_secs(),
        })
    }
}
