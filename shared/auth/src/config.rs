//! The `AUTH_*` settings: verifying tokens, and this service's own credentials.

use std::time::Duration;

use shared_config::{ConfigError, Env, is_http_url};

/// How a service checks the bearer tokens sent to it (it is then an OAuth 2.0
/// resource server), and how it gets its own token for the services it calls.
///
/// Everything is off while `AUTH_ISSUER` is unset: tokens are not looked at
/// and every caller is served as before.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `AUTH_ISSUER`: the `iss` tokens must carry, exactly as the provider
    /// writes it (Auth0's ends with a slash, Keycloak's does not).
    pub issuer: Option<String>,
    /// `AUTH_AUDIENCE` (default `shop`): the `aud` tokens must carry.
    pub audience: String,
    /// `AUTH_JWKS_URL`: where the signing keys are; unset = the `jwks_uri` of
    /// the issuer's discovery document.
    pub jwks_url: Option<String>,
    /// `AUTH_REQUIRED` (default false): anonymous callers get 401 where a
    /// route needs a customer (the customer routes, the event stream),
    /// instead of being served as without auth. Routes that need a scope need
    /// a token whenever `issuer` is set, whatever this says (fail closed).
    pub required: bool,
    /// `AUTH_JWKS_REFRESH_MS` (default 30000, at least
    /// [`JWKS_REFRESH_FLOOR_MS`]): the keys are fetched at most this often,
    /// so forged `kid`s cannot hammer the provider; also the shortest time a
    /// fetched key set stands (see [`crate::keys`]).
    pub jwks_refresh: Duration,
    /// `AUTH_CLIENT_ID` and `AUTH_CLIENT_SECRET` (with `AUTH_TOKEN_URL`): this
    /// service's own client credentials, for the calls it makes.
    pub client: Option<ClientCredentials>,
    /// `AUTH_CA_FILE`: CAs trusted for the provider's https URLs besides
    /// Mozilla's roots (a provider behind a private CA).
    pub extra_roots: ExtraRoots,
    /// The issuer's keys handed over in-process instead of fetched: for the
    /// provider itself verifying its own tokens ([`AuthConfig::own_tokens`]).
    /// Never read from the environment.
    pub given_keys: Option<std::sync::Arc<jsonwebtoken::jwk::JwkSet>>,
}

/// The least `AUTH_JWKS_REFRESH_MS`: a smaller one is a start-up error (a
/// forged `kid` per request would otherwise be a fetch per request).
pub const JWKS_REFRESH_FLOOR_MS: u64 = 1000;

impl AuthConfig {
    /// No verification and no credentials: every caller is served.
    pub fn off() -> Self {
        Self {
            issuer: None,
            audience: "shop".into(),
            jwks_url: None,
            required: false,
            jwks_refresh: Duration::from_secs(30),
            client: None,
            extra_roots: ExtraRoots::none(),
            given_keys: None,
        }
    }

    /// The provider's own settings for verifying the tokens it issues with
    /// `keys`: nothing fetched, tokens optional.
    pub fn own_tokens(issuer: &str, audience: &str, keys: jsonwebtoken::jwk::JwkSet) -> Self {
        Self {
            issuer: Some(issuer.to_owned()),
            audience: audience.to_owned(),
            given_keys: Some(std::sync::Arc::new(keys)),
            ..Self::off()
        }
    }

    /// Whether tokens are verified at all.
    pub fn is_on(&self) -> bool {
        self.issuer.is_some()
    }

    /// # Errors
    /// When a URL is not http(s), `AUTH_REQUIRED` is not a boolean or is set
    /// without `AUTH_ISSUER`, only one of the client id and secret is set, or
    /// they are set with neither `AUTH_TOKEN_URL` nor `AUTH_ISSUER`, or
    /// `AUTH_CA_FILE` cannot be read or holds no usable CA certificate, or
    /// `AUTH_JWKS_REFRESH_MS` is under [`JWKS_REFRESH_FLOOR_MS`].
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let issuer = env.optional("AUTH_ISSUER");
        if let Some(issuer) = &issuer
            && !is_http_url(issuer)
        {
            return Err(ConfigError::new(
                "AUTH_ISSUER",
                issuer,
                "not an http(s) URL",
            ));
        }
        let required = env.parse("AUTH_REQUIRED", false)?;
        if required && issuer.is_none() {
            return Err(ConfigError::new(
                "AUTH_REQUIRED",
                "true",
                "needs AUTH_ISSUER: without an issuer no token can be verified",
            ));
        }
        let jwks_url = env.optional_http_url("AUTH_JWKS_URL")?;
        let client = ClientCredentials::from_env(env)?;
        if client.as_ref().is_some_and(|c| c.token_url.is_none()) && issuer.is_none() {
            return Err(ConfigError::new(
                "AUTH_TOKEN_URL",
                "",
                "needed with AUTH_CLIENT_ID when AUTH_ISSUER is unset: no token endpoint to ask",
            ));
        }
        Ok(Self {
            issuer,
            audience: env.string("AUTH_AUDIENCE", "shop"),
            jwks_url,
            required,
            jwks_refresh: env.millis("AUTH_JWKS_REFRESH_MS", 30_000, JWKS_REFRESH_FLOOR_MS)?,
            client,
            extra_roots: match env.optional("AUTH_CA_FILE") {
                Some(path) => ExtraRoots::from_pem_file(std::path::Path::new(&path))
                    .map_err(|reason| ConfigError::new("AUTH_CA_FILE", &path, reason))?,
                None => ExtraRoots::none(),
            },
            given_keys: None,
        })
    }
}

/// CA certificates trusted for https to the OpenID provider, besides the
/// compiled-in Mozilla roots: those of `AUTH_CA_FILE`, read at start-up.
#[derive(Clone)]
pub struct ExtraRoots(rustls::RootCertStore);

impl ExtraRoots {
    /// None: Mozilla's roots only.
    pub fn none() -> Self {
        Self(rustls::RootCertStore::empty())
    }

    /// The certificates of a PEM bundle (other PEM sections are skipped).
    ///
    /// # Errors
    /// When the file cannot be read, is not PEM, or holds no certificate
    /// usable as a trust anchor; the text says which.
    pub fn from_pem_file(path: &std::path::Path) -> Result<Self, String> {
        let pem = std::fs::read(path).map_err(|e| format!("cannot be read: {e}"))?;
        Self::from_pem(&pem)
    }

    /// [`ExtraRoots::from_pem_file`] for a bundle already in memory.
    ///
    /// # Errors
    /// When it is not PEM or holds no certificate usable as a trust anchor.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut store = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("not a PEM bundle: {e}"))?;
            store
                .add(cert)
                .map_err(|e| format!("a certificate cannot be trusted: {e}"))?;
        }
        if store.is_empty() {
            return Err("holds no PEM certificate".into());
        }
        Ok(Self(store))
    }

    /// The trust anchors, for a TLS client.
    pub fn roots(&self) -> &rustls::RootCertStore {
        &self.0
    }
}

/// The certificates themselves are public, but long: only their count.
impl std::fmt::Debug for ExtraRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExtraRoots({} CAs)", self.0.len())
    }
}

/// A client of an OAuth 2.0 token endpoint (`client_credentials` grant).
#[derive(Clone)]
pub struct ClientCredentials {
    /// `AUTH_TOKEN_URL`; unset = the `token_endpoint` of the issuer's discovery document.
    pub token_url: Option<String>,
    pub client_id: String,
    pub client_secret: String,
}

impl ClientCredentials {
    fn from_env(env: &Env) -> Result<Option<Self>, ConfigError> {
        let token_url = env.optional_http_url("AUTH_TOKEN_URL")?;
        match (
            env.optional("AUTH_CLIENT_ID"),
            env.optional("AUTH_CLIENT_SECRET"),
        ) {
            (None, None) => Ok(None),
            (Some(client_id), Some(client_secret)) => Ok(Some(Self {
                token_url,
                client_id,
                client_secret,
            })),
            (Some(_), None) => Err(ConfigError::new(
                "AUTH_CLIENT_SECRET",
                "",
                "needed with AUTH_CLIENT_ID",
            )),
            // The secret is not repeated in the message.
            (None, Some(_)) => Err(ConfigError::new(
                "AUTH_CLIENT_ID",
                "",
                "needed with AUTH_CLIENT_SECRET",
            )),
        }
    }
}

/// The secret stays out of logs and panics.
impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}
