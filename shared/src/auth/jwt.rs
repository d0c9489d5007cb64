//! Verifying the signed access tokens (JWT) of an OpenID Connect provider.
//!
//! The provider is named by its issuer URL only; its signing keys come from
//! its JWKS document (`AUTH_JWKS_URL`, else the `jwks_uri` of the issuer's
//! discovery document), fetched on first use and again when a token names a
//! key id (`kid`) not seen yet, at most once per `AUTH_JWKS_REFRESH_MS`: keys
//! rotate without a restart, and forged `kid`s cannot turn every request into
//! a fetch. The crypto is the `jsonwebtoken` crate's; what is checked here is
//! which algorithm and key it may use:
//!
//! - only ES256 and RS256, and only with a key of the same kind published
//!   under the token's `kid` (so `alg: none`, or HS256 "signed" with a public
//!   key, never reach a verifier);
//! - `iss`, `aud`, `exp`, `nbf` (with [`LEEWAY_S`] of clock skew) and `sub`
//!   are required and checked.
//!
//! - `iat`, when present, may not lie in the future (beyond the leeway).
//!
//! A verified token is remembered until it expires, so a client sending the
//! same token on every request pays for one signature check, not one each.
//! Only tokens that passed every check are remembered (so `nbf` cannot be
//! skipped through the memory: it only grows truer), and only the issuer can
//! mint those; at most [`REMEMBERED_MAX`] of at most [`MAX_TOKEN_BYTES`] each.
//!
//! When the keys cannot be fetched the answer is 503 (`KeysUnavailable`),
//! never 401: the caller's token may well be good. Until the next fetch is
//! allowed, requests needing an unknown key get that same 503.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::http::ProviderHttp;
use crate::config::AuthConfig;

/// Accepted clock skew between the provider and this service, in seconds.
pub const LEEWAY_S: u64 = 30;

/// Tokens longer than this are refused unread (real ones are well under 2 KiB).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// How many verified tokens are remembered at most.
pub const REMEMBERED_MAX: usize = 4096;

/// The largest JWKS or discovery document read.
const DOCUMENT_LIMIT: usize = 256 * 1024;

/// What a verified token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `sub`: the customer or the client the token was issued to.
    pub subject: String,
    /// `scope` (space separated) or Entra ID's `scp`.
    pub scopes: Vec<String>,
    /// `exp`, in seconds since the epoch.
    pub expires_at: u64,
}

impl Claims {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// The claims as sent; the standard ones are checked by `jsonwebtoken`.
#[derive(Deserialize)]
struct RawClaims {
    sub: String,
    exp: u64,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scp: Option<String>,
}

impl From<RawClaims> for Claims {
    fn from(raw: RawClaims) -> Self {
        let scopes = [raw.scope, raw.scp]
            .into_iter()
            .flatten()
            .flat_map(|s| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .collect();
        Self {
            subject: raw.sub,
            scopes,
            expires_at: raw.exp,
        }
    }
}

/// Why a token was refused. The text is safe to send back (it never quotes
/// the token).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("tokens signed with {0} are not accepted (ES256 and RS256 are)")]
    AlgorithmNotAllowed(String),
    #[error("the token names no signing key (kid)")]
    MissingKeyId,
    #[error("the token's signing key is not one of the issuer's")]
    UnknownKey,
    #[error("the token's algorithm does not match its signing key")]
    KeyMismatch,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token was issued for another audience")]
    WrongAudience,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token claims to be issued in the future")]
    IssuedInFuture,
    #[error("the token lacks a required claim or has a malformed one")]
    BadClaims,
    /// The keys could not be fetched: the fault is ours, not the caller's.
    #[error("the issuer's signing keys cannot be fetched right now")]
    KeysUnavailable,
}

impl From<jsonwebtoken::errors::Error> for TokenError {
    fn from(e: jsonwebtoken::errors::Error) -> Self {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::ExpiredSignature => Self::Expired,
            ErrorKind::ImmatureSignature => Self::NotYetValid,
            ErrorKind::InvalidIssuer => Self::WrongIssuer,
            ErrorKind::InvalidAudience => Self::WrongAudience,
            ErrorKind::InvalidSignature => Self::BadSignature,
            ErrorKind::InvalidAlgorithm => Self::KeyMismatch,
            ErrorKind::MissingRequiredClaim(_) | ErrorKind::Json(_) => Self::BadClaims,
            _ => Self::Malformed,
        }
    }
}

/// One published key, with the algorithm it verifies.
#[derive(Clone)]
struct Key {
    algorithm: Algorithm,
    decoding: DecodingKey,
}

/// Checks tokens of one issuer; shared by every worker.
pub struct Verifier {
    issuer: String,
    audience: String,
    jwks_url: Option<String>,
    min_refresh: Duration,
    http: ProviderHttp,
    keys: RwLock<Arc<HashMap<String, Key>>>,
    /// The last fetch of the keys; held across a fetch so that one request
    /// fetches while the others wait for its result.
    last_fetch: tokio::sync::Mutex<Option<Fetch>>,
    remembered: Mutex<HashMap<String, Arc<Claims>>>,
}

impl Verifier {
    /// A verifier for `config`'s issuer, or `None` when auth is off.
    pub fn new(config: &AuthConfig) -> Option<Self> {
        let issuer = config.issuer.clone()?;
        Some(Self {
            issuer,
            audience: config.audience.clone(),
            jwks_url: config.jwks_url.clone(),
            min_refresh: config.jwks_refresh,
            http: ProviderHttp::new(config),
            keys: RwLock::default(),
            last_fetch: tokio::sync::Mutex::default(),
            remembered: Mutex::default(),
        })
    }

    /// The claims of `token` once its signature and claims check out.
    ///
    /// # Errors
    /// When the token is refused, or its keys cannot be fetched.
    pub async fn verify(&self, token: &str) -> Result<Arc<Claims>, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        if let Some(claims) = self.recall(token) {
            return Ok(claims);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if !matches!(header.alg, Algorithm::ES256 | Algorithm::RS256) {
            return Err(TokenError::AlgorithmNotAllowed(format!("{:?}", header.alg)));
        }
        let kid = header.kid.ok_or(TokenError::MissingKeyId)?;
        let key = self.key(&kid).await?;
        if key.algorithm != header.alg {
            return Err(TokenError::KeyMismatch);
        }
        let data = jsonwebtoken::decode::<RawClaims>(
            token,
            &key.decoding,
            &self.validation(key.algorithm),
        )?;
        if data.claims.iat.is_some_and(|iat| iat > now_s() + LEEWAY_S) {
            return Err(TokenError::IssuedInFuture);
        }
        let claims = Arc::new(Claims::from(data.claims));
        self.remember(token, &claims);
        Ok(claims)
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_S;
        validation
    }

    /// A token verified before and not expired since.
    fn recall(&self, token: &str) -> Option<Arc<Claims>> {
        let remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        let claims = remembered.get(token)?;
        (claims.expires_at > now_s()).then(|| claims.clone())
    }

    fn remember(&self, token: &str, claims: &Arc<Claims>) {
        let mut remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        if remembered.len() >= REMEMBERED_MAX {
            let now = now_s();
            remembered.retain(|_, c| c.expires_at > now);
            if remembered.len() >= REMEMBERED_MAX {
                // Still full of live tokens: start again rather than grow.
                remembered.clear();
            }
        }
        remembered.insert(token.to_owned(), claims.clone());
    }

    /// The key named `kid`, fetching the keys when it is unknown and the
    /// last fetch is old enough.
    async fn key(&self, kid: &str) -> Result<Key, TokenError> {
        if let Some(key) = self.known(kid) {
            return Ok(key);
        }
        let mut last_fetch = self.last_fetch.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.known(kid) {
            return Ok(key);
        }
        if let Some(last) = *last_fetch
            && last.at.elapsed() < self.min_refresh
        {
            return Err(if last.failed {
                TokenError::KeysUnavailable
            } else {
                TokenError::UnknownKey
            });
        }
        let fetched = self.fetch_keys().await;
        *last_fetch = Some(Fetch {
            at: Instant::now(),
            failed: fetched.is_err(),
        });
        let keys = fetched.map_err(|e| {
            tracing::warn!(error = %e, issuer = %self.issuer, "fetching the signing keys failed");
            TokenError::KeysUnavailable
        })?;
        tracing::info!(issuer = %self.issuer, keys = keys.len(), "signing keys fetched");
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        self.known(kid).ok_or(TokenError::UnknownKey)
    }

    fn known(&self, kid: &str) -> Option<Key> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.get(kid).cloned()
    }

    async fn fetch_keys(&self) -> anyhow::Result<HashMap<String, Key>> {
        let url = match &self.jwks_url {
            Some(url) => url.clone(),
            None => discover(&self.http, &self.issuer).await?.jwks_uri,
        };
        let set: JwkSet = fetch_json(&self.http, &url).await?;
        Ok(set.keys.iter().filter_map(usable_key).collect())
    }
}

/// When the keys were last fetched, and whether that failed.
#[derive(Clone, Copy)]
struct Fetch {
    at: Instant,
    failed: bool,
}

/// A JWK this verifier can use: an ES256 (P-256) or RS256 key with a `kid`.
/// Keys meant for encryption, other curves or algorithms are skipped.
fn usable_key(jwk: &Jwk) -> Option<(String, Key)> {
    use jsonwebtoken::jwk::{KeyAlgorithm, PublicKeyUse};
    let kid = jwk.common.key_id.clone()?;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
            if ec.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        _ => return None,
    };
    let decoding = DecodingKey::from_jwk(jwk).ok()?;
    Some((
        kid,
        Key {
            algorithm,
            decoding,
        },
    ))
}

/// The parts of an OpenID Provider's discovery document used here.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub token_endpoint: Option<String>,
}

/// Reads `<issuer>/.well-known/openid-configuration` (OpenID Connect
/// Discovery 1.0 §4) with `http`, and checks that it speaks for `issuer`.
///
/// # Errors
/// When it cannot be fetched or read, or names another issuer.
pub async fn discover(http: &ProviderHttp, issuer: &str) -> anyhow::Result<Discovery> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let discovery: Discovery = fetch_json(http, &url).await?;
    anyhow::ensure!(
        discovery.issuer == issuer,
        "the discovery document at {url} is for issuer {:?}",
        discovery.issuer
    );
    Ok(discovery)
}

async fn fetch_json<T: serde::de::DeserializeOwned>(
    http: &ProviderHttp,
    url: &str,
) -> anyhow::Result<T> {
    use anyhow::Context;
    let mut response = http
        .client()
        .get(url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("GET {url}: {e}"))?;
    anyhow::ensure!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    let body = response
        .body()
        .limit(DOCUMENT_LIMIT)
        .await
        .map_err(|e| anyhow::anyhow!("GET {url}: {e}"))?;
    serde_json::from_slice(&body).with_context(|| format!("GET {url}: not the expected JSON"))
}

fn now_s() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_come_from_scope_or_scp() {
        let raw = RawClaims {
            sub: "c1".into(),
            exp: 1,
            iat: None,
            scope: Some("a:read  b:write".into()),
            scp: Some("c:x".into()),
        };
        let claims = Claims::from(raw);
        assert_eq!(claims.scopes, ["a:read", "b:write", "c:x"]);
        assert!(claims.has_scope("b:write"));
        assert!(!claims.has_scope("b"));
    }

    #[test]
    fn a_poisoned_memory_is_still_used_without_panicking() {
        let config = AuthConfig {
            issuer: Some("http://127.0.0.1:1".into()),
            ..AuthConfig::off()
        };
        let verifier = Verifier::new(&config).expect("auth is on");
        let poisoning = std::thread::scope(|s| {
            s.spawn(|| {
                let _held = verifier.remembered.lock();
                panic!("poisoning the lock");
            })
            .join()
        });
        assert!(poisoning.is_err() && verifier.remembered.is_poisoned());
        let claims = Arc::new(Claims {
            subject: "c1".into(),
            scopes: vec![],
            expires_at: now_s() + 60,
        });
        verifier.remember("t", &claims);
        assert_eq!(verifier.recall("t"), Some(claims));
        assert_eq!(verifier.recall("other"), None);
    }

    #[test]
    fn the_memory_stays_bounded() {
        let config = AuthConfig {
            issuer: Some("http://127.0.0.1:1".into()),
            ..AuthConfig::off()
        };
        let verifier = Verifier::new(&config).expect("auth is on");
        let claims = Arc::new(Claims {
            subject: "c1".into(),
            scopes: vec![],
            expires_at: now_s() + 60,
        });
        for i in 0..=REMEMBERED_MAX * 2 {
            verifier.remember(&format!("t{i}"), &claims);
        }
        let size = verifier.remembered.lock().map(|m| m.len()).unwrap_or(0);
        assert!((1..=REMEMBERED_MAX).contains(&size), "{size} remembered");
    }
}
