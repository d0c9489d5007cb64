//! Verifying the signed access tokens (JWT) of an OpenID Connect provider.
//!
//! The provider is named by its issuer URL only; its signing keys come from
//! its JWKS document (`AUTH_JWKS_URL`, else the `jwks_uri` of the issuer's
//! discovery document). They are fetched on first use, again when a token
//! names a key id (`kid`) not seen yet (at most once per
//! `AUTH_JWKS_REFRESH_MS`, so forged `kid`s cannot turn every request into a
//! fetch), and in the background whenever the set held is due (see
//! [`super::keys`] for how long a set stands, and [`Verifier::keep_fresh`]).
//! A key the provider no longer publishes is forgotten at that refresh, with
//! every token verified with it: keys rotate, and are withdrawn, without a
//! restart. A refresh that fails keeps the last good set (tokens keep
//! working while the provider is down), and is logged and counted.
//!
//! The crypto is the `jsonwebtoken` crate's; what is checked here is which
//! algorithm and key it may use:
//!
//! - only ES256 and RS256, and only with a key of the same kind published
//!   under the token's `kid` (so `alg: none`, or HS256 "signed" with a public
//!   key, never reach a verifier); RSA keys under 2048 bits are not used;
//! - `typ`, when present, names an access token (`JWT` or `at+jwt`, RFC
//!   9068), so that another kind of JWT the provider signs (a logout token,
//!   a DPoP proof) is not taken for one;
//! - `iss`, `aud`, `exp`, `nbf` (with [`LEEWAY_S`] of clock skew) and `sub`
//!   are required and checked.
//!
//! - `iat`, when present, may not lie in the future (beyond the leeway).
//!
//! A verified token is remembered until it expires or its key is withdrawn,
//! so a client sending the same token on every request pays for one
//! signature check, not one each. Only tokens that passed every check are
//! remembered (so `nbf` cannot be skipped through the memory: it only grows
//! truer), and only the issuer can mint those; at most [`REMEMBERED_MAX`] of
//! at most [`MAX_TOKEN_BYTES`] each.
//!
//! When the keys cannot be fetched the answer is 503 (`KeysUnavailable`),
//! never 401: the caller's token may well be good. Until the next fetch is
//! allowed (1 s after a failure, then 2, 4… up to `AUTH_JWKS_REFRESH_MS`),
//! requests needing an unknown key get that same 503.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, Validation};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Deserialize;

use super::http::ProviderHttp;
use super::keys::{Key, Keys, max_age, refresh_period, usable_keys};
use crate::AuthConfig;
use shared_http::metrics::Registry;

/// The verifier's metrics (counters gain `_total` on the wire).
pub mod names {
    pub const AUTH_KEY_FETCHES: &str = "auth_key_fetches";
}

/// Accepted clock skew between the provider and this service, in seconds.
pub const LEEWAY_S: u64 = 30;

/// Tokens longer than this are refused unread (real ones are well under 2 KiB).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// How many verified tokens are remembered at most.
pub const REMEMBERED_MAX: usize = 4096;

/// The largest JWKS or discovery document read.
const DOCUMENT_LIMIT: usize = 256 * 1024;

/// The background refresh never fetches twice closer than this, whatever
/// the settings (tests set `AUTH_JWKS_REFRESH_MS` to 0).
const LEAST_PAUSE: Duration = Duration::from_secs(1);

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
    #[error("the token's type (typ) is not an access token's (JWT or at+jwt)")]
    NotAnAccessToken,
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

/// Checks tokens of one issuer; shared by every worker.
pub struct Verifier {
    issuer: String,
    audience: String,
    jwks_url: Option<String>,
    /// Keys handed over in-process ([`AuthConfig::given_keys`]): never fetched.
    given_keys: Option<Arc<JwkSet>>,
    min_refresh: Duration,
    http: ProviderHttp,
    keys: RwLock<Arc<Keys>>,
    /// The last fetch of the keys; held across a fetch so that one request
    /// (or the background refresh) fetches while the others wait for its
    /// result.
    last_fetch: tokio::sync::Mutex<Option<Fetch>>,
    remembered: Mutex<HashMap<String, Remembered>>,
    fetches: Family<OutcomeLabels, Counter>,
}

/// A verified token, and the key that verified it.
struct Remembered {
    claims: Arc<Claims>,
    kid: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

impl Verifier {
    /// A verifier for `config`'s issuer, or `None` when auth is off.
    pub fn new(config: &AuthConfig) -> Option<Self> {
        let issuer = config.issuer.clone()?;
        Some(Self {
            issuer,
            audience: config.audience.clone(),
            jwks_url: config.jwks_url.clone(),
            given_keys: config.given_keys.clone(),
            min_refresh: config.jwks_refresh,
            http: ProviderHttp::new(config),
            keys: RwLock::default(),
            last_fetch: tokio::sync::Mutex::default(),
            remembered: Mutex::default(),
            fetches: Family::default(),
        })
    }

    /// Adds the count of key fetches, by outcome, to `registry`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            names::AUTH_KEY_FETCHES,
            "Fetches of the token issuer's signing keys (JWKS), by outcome (ok, failed)",
            self.fetches.clone(),
        );
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
        check_type(header.typ.as_deref())?;
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
        self.remember(token, &kid, &key, &claims);
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

    /// A token verified before, not expired since, whose key is still
    /// published (a withdrawal forgets its tokens, see [`Verifier::install`]).
    fn recall(&self, token: &str) -> Option<Arc<Claims>> {
        let remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        let claims = &remembered.get(token)?.claims;
        (claims.expires_at > now_s()).then(|| claims.clone())
    }

    /// Remembers `token`, verified with `key` under `kid`, unless that key
    /// was withdrawn while the token was being checked.
    fn remember(&self, token: &str, kid: &str, key: &Key, claims: &Arc<Claims>) {
        let mut remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        // Checked under the memory's lock: a refresh installs the new keys
        // before it takes that lock to forget the withdrawn keys' tokens, so
        // either it forgets this token or this check sees the new keys.
        if !self.known(kid).is_some_and(|known| known.same_as(key)) {
            return;
        }
        if remembered.len() >= REMEMBERED_MAX {
            let now = now_s();
            remembered.retain(|_, r| r.claims.expires_at > now);
            if remembered.len() >= REMEMBERED_MAX {
                // Still full of live tokens: start again rather than grow.
                remembered.clear();
            }
        }
        let entry = Remembered {
            claims: claims.clone(),
            kid: kid.to_owned(),
        };
        remembered.insert(token.to_owned(), entry);
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
            && Instant::now() < last.allowed_again
        {
            return Err(if last.failed {
                TokenError::KeysUnavailable
            } else {
                TokenError::UnknownKey
            });
        }
        if !self.fetch(&mut last_fetch).await {
            return Err(TokenError::KeysUnavailable);
        }
        self.known(kid).ok_or(TokenError::UnknownKey)
    }

    fn known(&self, kid: &str) -> Option<Key> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.get(kid).cloned()
    }

    /// Refreshes the keys whenever the set held is due, until `draining`
    /// says stop; nothing is fetched before the first token asks for a key.
    /// Run once per service, beside its server.
    pub async fn keep_fresh(&self, draining: impl Fn() -> bool) {
        if self.given_keys.is_some() {
            return;
        }
        while !draining() {
            let due = self.last_fetch.lock().await.map(|f| f.next_refresh);
            let pause = match due {
                Some(due) => due.saturating_duration_since(Instant::now()),
                None => self.min_refresh.max(LEAST_PAUSE),
            };
            actix_web::rt::time::sleep(pause).await;
            let mut last_fetch = self.last_fetch.lock().await;
            // A token's unknown `kid` may have fetched meanwhile.
            if last_fetch.is_some_and(|f| f.next_refresh <= Instant::now()) {
                self.fetch(&mut last_fetch).await;
            }
        }
    }

    /// Fetches and installs the keys, or keeps the last good set; records
    /// the attempt in `last_fetch` (held by the caller). `true` when fetched.
    async fn fetch(&self, last_fetch: &mut Option<Fetch>) -> bool {
        let fetched = self.fetch_keys().await;
        let at = Instant::now();
        let ok = fetched.is_ok();
        *last_fetch = Some(match fetched {
            Ok((keys, max_age)) => {
                let period = refresh_period(max_age, self.min_refresh);
                self.install(keys, period);
                Fetch::ok(at, period, self.min_refresh)
            }
            Err(e) => {
                let keys_kept = self.keys.read().map(|k| k.len()).unwrap_or_default();
                tracing::warn!(
                    error = %e, issuer = %self.issuer, keys_kept,
                    "fetching the signing keys failed"
                );
                Fetch::failed(at, self.min_refresh, last_fetch.as_ref())
            }
        });
        let outcome = if ok { "ok" } else { "failed" };
        self.fetches.get_or_create(&OutcomeLabels { outcome }).inc();
        ok
    }

    /// Makes `fresh` the keys in use, and forgets the tokens verified with a
    /// key it no longer holds (withdrawn, or replaced under the same `kid`).
    /// Logged at info when the set changed, else at debug (every period).
    fn install(&self, fresh: Keys, period: Duration) {
        let (withdrawn, added, count) = {
            let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
            let differ = |from: &Keys, to: &Keys| -> HashSet<String> {
                let kept = |kid: &String, key: &Key| to.get(kid).is_some_and(|k| k.same_as(key));
                from.iter()
                    .filter(|(kid, key)| !kept(kid, key))
                    .map(|(kid, _)| kid.clone())
                    .collect()
            };
            let changes = (differ(&keys, &fresh), differ(&fresh, &keys), fresh.len());
            *keys = Arc::new(fresh);
            changes
        };
        let (issuer, refresh_s) = (&self.issuer, period.as_secs());
        if withdrawn.is_empty() && added.is_empty() {
            tracing::debug!(%issuer, keys = count, refresh_s, "signing keys fetched, unchanged");
            return;
        }
        if !withdrawn.is_empty() {
            let mut remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
            remembered.retain(|_, r| !withdrawn.contains(&r.kid));
        }
        tracing::info!(
            %issuer, keys = count, refresh_s, ?added, ?withdrawn,
            "signing keys fetched; withdrawn ones, and the tokens they signed, are refused"
        );
    }

    /// The usable keys, and how long the provider says they stand.
    async fn fetch_keys(&self) -> anyhow::Result<(Keys, Option<Duration>)> {
        if let Some(given) = &self.given_keys {
            return Ok((usable_keys(given), None));
        }
        let url = match &self.jwks_url {
            Some(url) => url.clone(),
            None => discover(&self.http, &self.issuer).await?.jwks_uri,
        };
        let (set, max_age): (JwkSet, _) = fetch_document(&self.http, &url).await?;
        Ok((usable_keys(&set), max_age))
    }
}

/// RFC 8725 §3.11 and RFC 9068 §4: a `typ`, when present, must say access
/// token. Media types compare case-insensitively, and a `typ` without a `/`
/// is read with `application/` in front (RFC 7515 §4.1.9).
fn check_type(typ: Option<&str>) -> Result<(), TokenError> {
    let Some(typ) = typ else {
        return Ok(());
    };
    let typ = typ.to_ascii_lowercase();
    match typ.strip_prefix("application/").unwrap_or(&typ) {
        "jwt" | "at+jwt" => Ok(()),
        _ => Err(TokenError::NotAnAccessToken),
    }
}

/// When the keys were last fetched, whether that failed (and how many
/// times in a row), when a request may fetch again, and when the background
/// refresh does.
#[derive(Clone, Copy)]
struct Fetch {
    failed: bool,
    failures: u32,
    allowed_again: Instant,
    next_refresh: Instant,
}

impl Fetch {
    fn ok(at: Instant, period: Duration, min_refresh: Duration) -> Self {
        Self {
            failed: false,
            failures: 0,
            allowed_again: at + min_refresh,
            next_refresh: at + period.max(LEAST_PAUSE),
        }
    }

    /// A failed fetch is tried again after 1 s, then 2, 4… up to
    /// `min_refresh`: one lost lookup or a provider restarting costs a
    /// second or two of 503s, not a whole refresh period, while a provider
    /// that stays down is asked no more often than one that answers.
    fn failed(at: Instant, min_refresh: Duration, last: Option<&Self>) -> Self {
        let failures = last.filter(|l| l.failed).map_or(0, |l| l.failures) + 1;
        let backoff = LEAST_PAUSE
            .saturating_mul(1 << (failures - 1).min(16))
            .min(min_refresh);
        Self {
            failed: true,
            failures,
            allowed_again: at + backoff,
            next_refresh: at + backoff.max(LEAST_PAUSE),
        }
    }
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
    Ok(fetch_document(http, url).await?.0)
}

/// A JSON document, with the `max-age` its response names.
async fn fetch_document<T: serde::de::DeserializeOwned>(
    http: &ProviderHttp,
    url: &str,
) -> anyhow::Result<(T, Option<Duration>)> {
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
    let max_age = response
        .headers()
        .get(actix_web::http::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(max_age);
    let body = response
        .body()
        .limit(DOCUMENT_LIMIT)
        .await
        .map_err(|e| anyhow::anyhow!("GET {url}: {e}"))?;
    let document = serde_json::from_slice(&body)
        .with_context(|| format!("GET {url}: not the expected JSON"))?;
    Ok((document, max_age))
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

    /// A verifier holding one RSA key under `kid` (the test fixture's).
    fn verifier_with_key(kid: &str) -> (Verifier, Key) {
        let verifier = Verifier::new(&AuthConfig {
            issuer: Some("http://127.0.0.1:1".into()),
            ..AuthConfig::off()
        })
        .expect("auth is on");
        verifier.install(key_set(&[kid]), Duration::from_secs(60));
        let key = verifier.known(kid).expect("installed");
        (verifier, key)
    }

    /// The fixture's RSA key published under each of `kids`.
    fn key_set(kids: &[&str]) -> Keys {
        use base64::Engine;
        let pem = include_str!("../../testkit/fixtures/rsa-2048.pem");
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("base64");
        let encoding = jsonwebtoken::EncodingKey::from_rsa_der(&der);
        let keys = kids.iter().map(|kid| {
            let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, Algorithm::RS256)
                .expect("a public half");
            jwk.common.key_id = Some((*kid).to_owned());
            jwk
        });
        usable_keys(&JwkSet {
            keys: keys.collect(),
        })
    }

    fn claims() -> Arc<Claims> {
        Arc::new(Claims {
            subject: "c1".into(),
            scopes: vec![],
            expires_at: now_s() + 60,
        })
    }

    #[test]
    fn a_withdrawn_keys_tokens_are_forgotten_and_not_remembered_again() {
        let (verifier, key) = verifier_with_key("k1");
        verifier.remember("t", "k1", &key, &claims());
        assert!(verifier.recall("t").is_some());
        // The set is fetched again with k1 still in it: nothing is forgotten.
        verifier.install(key_set(&["k1", "k2"]), Duration::from_secs(60));
        assert!(verifier.recall("t").is_some());
        verifier.install(key_set(&["k2"]), Duration::from_secs(60));
        assert_eq!(verifier.recall("t"), None);
        // A check that began before the withdrawal does not bring it back.
        verifier.remember("t", "k1", &key, &claims());
        assert_eq!(verifier.recall("t"), None);
    }

    #[test]
    fn only_access_token_types_pass() {
        for typ in [
            None,
            Some("JWT"),
            Some("jwt"),
            Some("at+jwt"),
            Some("AT+JWT"),
        ] {
            assert_eq!(check_type(typ), Ok(()), "{typ:?}");
        }
        assert_eq!(check_type(Some("application/at+JWT")), Ok(()));
        for typ in [
            "dpop+jwt",
            "logout+jwt",
            "JWS",
            "",
            "application/json",
            "text/jwt",
        ] {
            assert_eq!(
                check_type(Some(typ)),
                Err(TokenError::NotAnAccessToken),
                "{typ}"
            );
        }
    }

    #[test]
    fn a_poisoned_memory_is_still_used_without_panicking() {
        let (verifier, key) = verifier_with_key("k1");
        let poisoning = std::thread::scope(|s| {
            s.spawn(|| {
                let _held = verifier.remembered.lock();
                panic!("poisoning the lock");
            })
            .join()
        });
        assert!(poisoning.is_err() && verifier.remembered.is_poisoned());
        let claims = claims();
        verifier.remember("t", "k1", &key, &claims);
        assert_eq!(verifier.recall("t"), Some(claims));
        assert_eq!(verifier.recall("other"), None);
    }

    #[test]
    fn the_memory_stays_bounded() {
        let (verifier, key) = verifier_with_key("k1");
        let claims = claims();
        for i in 0..=REMEMBERED_MAX * 2 {
            verifier.remember(&format!("t{i}"), "k1", &key, &claims);
        }
        let size = verifier.remembered.lock().map(|m| m.len()).unwrap_or(0);
        assert!((1..=REMEMBERED_MAX).contains(&size), "{size} remembered");
    }
}
