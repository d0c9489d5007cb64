//! This service's own access token, for the calls it makes: the OAuth 2.0
//! client credentials grant (RFC 6749 §4.4).
//!
//! A [`TokenSource`] posts `grant_type=client_credentials` to the token
//! endpoint (`AUTH_TOKEN_URL`, else the `token_endpoint` of the issuer's
//! discovery document), authenticating with HTTP Basic: the client id and
//! secret form-urlencoded first (RFC 6749 §2.3.1). The token is kept until a
//! little before `expires_in` runs out ([`refresh_margin`]); one fetch runs at
//! a time, and callers arriving meanwhile wait for its result instead of
//! fetching again. A token the called service refused can be dropped
//! ([`TokenSource::forget`]) so that the next call fetches a new one.
//!
//! Neither the secret nor a token is ever logged or put in an error.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix_web::http::header;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::http::ProviderHttp;
use crate::AuthConfig;
use crate::ClientCredentials;

/// The largest token response read (real ones are well under 4 KiB).
const RESPONSE_LIMIT: usize = 64 * 1024;

/// The lifetime assumed when a response leaves out `expires_in` (it is only
/// RECOMMENDED, RFC 6749 §5.1).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// The most a token is refreshed ahead of its expiry.
const MAX_MARGIN: Duration = Duration::from_secs(30);

/// An access token; its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Arc<str>);

impl AccessToken {
    /// The token itself, for an `Authorization: Bearer …` header.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// Why no token could be had. The texts name URLs and the client id, never
/// the secret or a token.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no token endpoint: AUTH_TOKEN_URL and AUTH_ISSUER are both unset")]
    NoEndpoint,
    #[error("finding the token endpoint: {0}")]
    Discovery(String),
    #[error("the issuer's discovery document names no token_endpoint")]
    NotAdvertised,
    #[error("POST {url}: {reason}")]
    Transport { url: String, reason: String },
    /// An RFC 6749 §5.2 error answer (`invalid_client`, …), or any non-2xx.
    #[error("POST {url}: answered {status} ({error}) for client {client_id}")]
    Refused {
        url: String,
        status: u16,
        error: String,
        client_id: String,
    },
    #[error("POST {url}: the answer is not a bearer token response")]
    Malformed { url: String },
}

/// A token and when to stop using it.
struct Cached {
    token: AccessToken,
    refresh_at: Instant,
}

/// Fetches and caches this service's access token; shared by the workers.
pub struct TokenSource {
    credentials: ClientCredentials,
    issuer: Option<String>,
    http: ProviderHttp,
    cached: RwLock<Option<Cached>>,
    /// Held across a fetch, so that one caller fetches while the others wait;
    /// holds the token endpoint once known (discovered at most once).
    fetching: tokio::sync::Mutex<Option<String>>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A source for `config`'s client credentials, or `None` when it has none.
    pub fn new(config: &AuthConfig) -> Option<Self> {
        let credentials = config.client.clone()?;
        Some(Self {
            fetching: tokio::sync::Mutex::new(credentials.token_url.clone()),
            credentials,
            issuer: config.issuer.clone(),
            http: ProviderHttp::new(config),
            cached: RwLock::default(),
        })
    }

    /// The client id, for log lines.
    pub fn client_id(&self) -> &str {
        &self.credentials.client_id
    }

    /// A token good for a while yet: the cached one, else a fresh one.
    ///
    /// # Errors
    /// When the token endpoint cannot be found, reached, or refuses the client.
    pub async fn token(&self) -> Result<AccessToken, FetchError> {
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let mut endpoint = self.fetching.lock().await;
        // Another caller may have fetched while this one waited.
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let url = match endpoint.as_ref() {
            Some(url) => url.clone(),
            None => endpoint.insert(self.discover().await?).clone(),
        };
        let fetched_at = Instant::now();
        let (token, lifetime) = self.fetch(&url).await?;
        tracing::info!(
            token_url = %url,
            client_id = %self.credentials.client_id,
            expires_in_s = lifetime.as_secs(),
            "access token fetched"
        );
        let refresh_at = fetched_at + lifetime.saturating_sub(refresh_margin(lifetime));
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) = Some(Cached {
            token: token.clone(),
            refresh_at,
        });
        Ok(token)
    }

    /// Drops `token` if it is still the cached one (a newer one is kept), so
    /// that the next call fetches a new token.
    pub fn forget(&self, token: &AccessToken) {
        let mut cached = self.cached.write().unwrap_or_else(|e| e.into_inner());
        if cached.as_ref().is_some_and(|c| &c.token == token) {
            *cached = None;
        }
    }

    fn fresh(&self) -> Option<AccessToken> {
        let cached = self.cached.read().unwrap_or_else(|e| e.into_inner());
        let cached = cached.as_ref()?;
        (Instant::now() < cached.refresh_at).then(|| cached.token.clone())
    }

    async fn discover(&self) -> Result<String, FetchError> {
        let issuer = self.issuer.as_deref().ok_or(FetchError::NoEndpoint)?;
        let discovery = super::jwt::discover(&self.http, issuer)
            .await
            .map_err(|e| FetchError::Discovery(format!("{e:#}")))?;
        discovery.token_endpoint.ok_or(FetchError::NotAdvertised)
    }

    /// One token request; the token and its lifetime.
    async fn fetch(&self, url: &str) -> Result<(AccessToken, Duration), FetchError> {
        let transport = |e: &dyn fmt::Display| FetchError::Transport {
            url: url.to_owned(),
            reason: e.to_string(),
        };
        // No redirects (see `http`): they would carry the secret on.
        let mut response = self
            .http
            .client()
            .post(url)
            .insert_header((
                header::AUTHORIZATION,
                basic_authorization(&self.credentials.client_id, &self.credentials.client_secret),
            ))
            .insert_header((header::ACCEPT, "application/json"))
            .content_type("application/x-www-form-urlencoded")
            .send_body(token_request_body())
            .await
            .map_err(|e| transport(&e))?;
        let body = response
            .body()
            .limit(RESPONSE_LIMIT)
            .await
            .map_err(|e| transport(&e))?;
        if !response.status().is_success() {
            return Err(FetchError::Refused {
                url: url.to_owned(),
                status: response.status().as_u16(),
                error: error_code(&body),
                client_id: self.credentials.client_id.clone(),
            });
        }
        read_token_response(&body).ok_or_else(|| FetchError::Malformed {
            url: url.to_owned(),
        })
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
fn basic_authorization(client_id: &str, client_secret: &str) -> String {
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(client_id), encode(client_secret));
    format!("Basic {}", STANDARD.encode(pair))
}

/// The form body of a client credentials token request (RFC 6749 §4.4.2).
fn token_request_body() -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .finish()
}

/// How long before its expiry a token of `lifetime` is replaced: a tenth of
/// its lifetime, at most [`MAX_MARGIN`].
pub fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(MAX_MARGIN)
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The token and lifetime of a successful response (RFC 6749 §5.1); `None`
/// for anything else, including a token type other than Bearer.
fn read_token_response(body: &[u8]) -> Option<(AccessToken, Duration)> {
    let response: TokenResponse = serde_json::from_slice(body).ok()?;
    let usable = response.token_type.eq_ignore_ascii_case("bearer")
        && !response.access_token.is_empty()
        && response.access_token.bytes().all(|b| b.is_ascii_graphic());
    usable.then(|| {
        let lifetime = response
            .expires_in
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
        (AccessToken(response.access_token.into()), lifetime)
    })
}

/// The `error` code of an RFC 6749 §5.2 answer, when it is one (a short
/// word of the characters the RFC allows); never other text of the body.
fn error_code(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorResponse {
        error: String,
    }
    serde_json::from_slice::<ErrorResponse>(body)
        .ok()
        .map(|e| e.error)
        .filter(|e| e.len() <= 64 && e.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .unwrap_or_else(|| "no error code".into())
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

    use super::*;

    #[test]
    fn client_credentials_are_form_urlencoded_before_basic() {
        // RFC 6749 §2.3.1: urlencode each, then `id:secret` in base64.
        assert_eq!(
            basic_authorization("my client", "s3cr:t+/é %"),
            "Basic bXkrY2xpZW50OnMzY3IlM0F0JTJCJTJGJUMzJUE5KyUyNQ=="
        );
        assert_eq!(
            basic_authorization("order", "s3cret"),
            "Basic b3JkZXI6czNjcmV0"
        );
        assert_eq!(token_request_body(), "grant_type=client_credentials");
    }

    #[test]
    fn token_responses_are_read_strictly() {
        let (token, lifetime) = read_token_response(
            br#"{"access_token":"abc","token_type":"bearer","expires_in":900,"scope":"x"}"#,
        )
        .expect("a token response");
        assert_eq!(token.secret(), "abc");
        assert_eq!(lifetime, Duration::from_secs(900));
        assert_eq!(format!("{token:?}"), "AccessToken(<redacted>)");
        let (_, lifetime) = read_token_response(br#"{"access_token":"abc","token_type":"Bearer"}"#)
            .expect("expires_in is optional");
        assert_eq!(lifetime, DEFAULT_LIFETIME);
        for bad in [
            &br#"{"access_token":"abc","token_type":"mac"}"#[..],
            br#"{"access_token":"","token_type":"Bearer"}"#,
            br#"{"access_token":"a b","token_type":"Bearer"}"#,
            br#"{"token_type":"Bearer"}"#,
            b"<html>",
        ] {
            assert!(read_token_response(bad).is_none());
        }
        assert_eq!(
            error_code(br#"{"error":"invalid_client"}"#),
            "invalid_client"
        );
        assert_eq!(error_code(br#"{"error":"<script>"}"#), "no error code");
        assert_eq!(error_code(b"oops"), "no error code");
    }

    #[test]
    fn tokens_are_refreshed_a_tenth_early_at_most_thirty_seconds() {
        assert_eq!(refresh_margin(Duration::from_secs(900)), MAX_MARGIN);
        assert_eq!(
            refresh_margin(Duration::from_secs(60)),
            Duration::from_secs(6)
        );
        assert_eq!(refresh_margin(Duration::ZERO), Duration::ZERO);
    }

    /// A token endpoint on a port-0 server (and the discovery document of an
    /// issuer naming it): it checks the Basic credentials
    /// of `order:s3cret`, counts the tokens it gives out and names each by
    /// its number, valid for `expires_in` seconds.
    struct Endpoint {
        /// Also an issuer, whose discovery document names `url`.
        issuer: String,
        url: String,
        fetches: Arc<AtomicUsize>,
    }

    impl Endpoint {
        fn start(expires_in: u64) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
            let port = listener.local_addr().expect("an address").port();
            let fetches = Arc::new(AtomicUsize::new(0));
            let counter = fetches.clone();
            let base = format!("http://127.0.0.1:{port}");
            let discovery = serde_json::json!({
                "issuer": base, "jwks_uri": format!("{base}/jwks"),
                "token_endpoint": format!("{base}/token"),
            });
            let server = HttpServer::new(move || {
                let counter = counter.clone();
                let discovery = discovery.clone();
                App::new()
                    .route(
                        "/token",
                        web::post().to(move |req: HttpRequest, form: String| {
                            let counter = counter.clone();
                            async move { answer(&req, &form, &counter, expires_in) }
                        }),
                    )
                    .route(
                        "/.well-known/openid-configuration",
                        web::get().to(move || {
                            let body = discovery.clone();
                            async move { HttpResponse::Ok().json(body) }
                        }),
                    )
            })
            .workers(1)
            .listen(listener)
            .expect("listening")
            .run();
            actix_web::rt::spawn(server);
            Self {
                issuer: format!("http://127.0.0.1:{port}"),
                url: format!("http://127.0.0.1:{port}/token"),
                fetches,
            }
        }

        fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    fn answer(
        req: &HttpRequest,
        form: &str,
        counter: &AtomicUsize,
        expires_in: u64,
    ) -> HttpResponse {
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if authorization != Some("Basic b3JkZXI6czNjcmV0")
            || form != "grant_type=client_credentials"
        {
            return HttpResponse::Unauthorized()
                .json(serde_json::json!({"error": "invalid_client"}));
        }
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        HttpResponse::Ok().json(serde_json::json!({
            "access_token": format!("token-{n}"), "token_type": "Bearer", "expires_in": expires_in,
        }))
    }

    fn source(url: &str, secret: &str) -> TokenSource {
        let config = AuthConfig {
            client: Some(ClientCredentials {
                token_url: Some(url.to_owned()),
                client_id: "order".into(),
                client_secret: secret.into(),
            }),
            ..AuthConfig::off()
        };
        TokenSource::new(&config).expect("credentials are set")
    }

    #[actix_web::test]
    async fn concurrent_callers_share_one_fetch_and_the_cached_token() {
        let endpoint = Endpoint::start(900);
        let source = source(&endpoint.url, "s3cret");
        let tokens = futures::future::join_all((0..20).map(|_| source.token())).await;
        for token in tokens {
            assert_eq!(token.expect("a token").secret(), "token-1");
        }
        assert_eq!(source.token().await.expect("cached").secret(), "token-1");
        assert_eq!(endpoint.fetches(), 1);
    }

    #[actix_web::test]
    async fn expired_and_forgotten_tokens_are_fetched_again() {
        // Valid for 0 s: stale as soon as it is cached.
        let endpoint = Endpoint::start(0);
        let source = source(&endpoint.url, "s3cret");
        assert_eq!(source.token().await.expect("a token").secret(), "token-1");
        assert_eq!(source.token().await.expect("a token").secret(), "token-2");
        assert_eq!(endpoint.fetches(), 2);

        let lasting = Endpoint::start(900);
        let source = self::source(&lasting.url, "s3cret");
        let first = source.token().await.expect("a token");
        source.forget(&first);
        let second = source.token().await.expect("a token");
        assert_eq!(second.secret(), "token-2");
        // Forgetting a token no longer cached keeps the newer one.
        source.forget(&first);
        assert_eq!(source.token().await.expect("cached"), second);
        assert_eq!(lasting.fetches(), 2);
    }

    #[actix_web::test]
    async fn without_a_token_url_the_issuer_names_the_endpoint() {
        let endpoint = Endpoint::start(900);
        let config = AuthConfig {
            issuer: Some(endpoint.issuer.clone()),
            client: Some(ClientCredentials {
                token_url: None,
                client_id: "order".into(),
                client_secret: "s3cret".into(),
            }),
            ..AuthConfig::off()
        };
        let source = TokenSource::new(&config).expect("credentials are set");
        assert_eq!(source.token().await.expect("a token").secret(), "token-1");
        assert_eq!(endpoint.fetches(), 1);
    }

    #[actix_web::test]
    async fn a_refused_client_gets_a_typed_error_without_the_secret() {
        let endpoint = Endpoint::start(900);
        let source = source(&endpoint.url, "wrong-secret");
        let error = source.token().await.expect_err("refused");
        assert!(
            matches!(&error, FetchError::Refused { status: 401, error, .. } if error == "invalid_client"),
            "{error:?}"
        );
        let text = format!("{error} {error:?} {source:?}");
        assert!(!text.contains("wrong-secret"), "{text}");
        assert_eq!(endpoint.fetches(), 0);

        let unreachable = self::source("http://127.0.0.1:1/token", "s3cret");
        assert!(matches!(
            unreachable.token().await,
            Err(FetchError::Transport { .. })
        ));
        let nowhere = TokenSource::new(&AuthConfig {
            client: Some(ClientCredentials {
                token_url: None,
                client_id: "order".into(),
                client_secret: "s3cret".into(),
            }),
            ..AuthConfig::off()
        })
        .expect("credentials are set");
        assert!(matches!(nowhere.token().await, Err(FetchError::NoEndpoint)));
    }
}
