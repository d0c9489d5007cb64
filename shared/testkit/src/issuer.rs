//! A stand-in OpenID provider for tests: its own P-256 keys, a discovery
//! document and a JWKS on a real port-0 server, and tokens it signs.
//!
//! It shares nothing with the identity service, so a service that accepts its
//! tokens is proven to work with any provider by configuration alone. It
//! counts the fetches of its JWKS and can be taken down, for the tests of how
//! often and how safely a service fetches keys.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use serde_json::{Value, json};

use shared_auth::AuthConfig;

/// A fixed 2048-bit RSA key (PKCS#1, made once with `openssl genrsa`):
/// generating one takes seconds in a debug build.
const RSA_PEM: &str = include_str!("../fixtures/rsa-2048.pem");

/// A fixed 1024-bit RSA key (`openssl genrsa -traditional 1024`): too short
/// to be trusted.
const SHORT_RSA_PEM: &str = include_str!("../fixtures/rsa-1024.pem");

/// One signing key: the private half and its public JWK.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    /// ES256 for [`TestKey::generate`], RS256 for [`TestKey::rsa`].
    pub algorithm: Algorithm,
    encoding: EncodingKey,
    /// The PKCS#8 PEM of the private key (for services that load key files).
    pub pem: String,
    pub jwk: Value,
}

impl TestKey {
    /// A fresh P-256 key.
    ///
    /// # Panics
    /// Never in practice: 32 random bytes are a valid scalar but with odds of 2^-128.
    pub fn generate() -> Self {
        let secret = loop {
            let bytes: [u8; 32] = rand::random();
            if let Ok(secret) = p256::SecretKey::from_slice(&bytes) {
                break secret;
            }
        };
        let der = secret
            .to_pkcs8_der()
            .expect("a P-256 key encodes as PKCS#8");
        let pem = secret
            .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
            .expect("a P-256 key encodes as PEM")
            .to_string();
        let point = secret.public_key().to_encoded_point(false);
        let x = URL_SAFE_NO_PAD.encode(point.x().expect("an uncompressed point has x"));
        let y = URL_SAFE_NO_PAD.encode(point.y().expect("an uncompressed point has y"));
        let kid = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>());
        Self {
            jwk: json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "use": "sig", "alg": "ES256"}),
            kid,
            algorithm: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            pem,
        }
    }

    /// The fixed RSA test key, signing RS256 as Keycloak or Entra ID do; `pem`
    /// is its PKCS#1 PEM.
    ///
    /// # Panics
    /// Never: the fixture is a valid key.
    pub fn rsa() -> Self {
        Self::rsa_from_pem(RSA_PEM)
    }

    /// A fixed 1024-bit RSA key, which verifiers must not trust.
    pub fn short_rsa() -> Self {
        Self::rsa_from_pem(SHORT_RSA_PEM)
    }

    fn rsa_from_pem(pem: &str) -> Self {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("the RSA fixture is base64");
        let encoding = EncodingKey::from_rsa_der(&der);
        let public = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, Algorithm::RS256)
            .expect("the RSA fixture has a public half");
        let kid = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>());
        let mut jwk = serde_json::to_value(public).expect("a JWK serializes");
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        Self {
            jwk,
            kid,
            algorithm: Algorithm::RS256,
            encoding,
            pem: pem.to_owned(),
        }
    }

    /// `claims` signed with this key (ES256 or RS256), under `kid`.
    ///
    /// # Panics
    /// When the claims do not serialize (they are JSON already).
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_typed(claims, Some("JWT"))
    }

    /// [`TestKey::sign`] with the header's `typ` set to `typ` (or left out).
    ///
    /// # Panics
    /// When the claims do not serialize (they are JSON already).
    pub fn sign_typed(&self, claims: &Value, typ: Option<&str>) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        header.typ = typ.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signing a JSON object")
    }
}

/// The provider: a server publishing [`TestIssuer::keys`], and a signer.
pub struct TestIssuer {
    /// `http://127.0.0.1:<port>`: the `iss` of its tokens and its discovery base.
    pub issuer: String,
    pub audience: String,
    signer: TestKey,
    published: Arc<RwLock<Vec<Value>>>,
    jwks_fetches: Arc<AtomicUsize>,
    reachable: Arc<AtomicBool>,
    max_age_s: Arc<AtomicU64>,
}

impl TestIssuer {
    /// Starts the provider's server with one key.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let port = listener.local_addr().expect("a bound address").port();
        let issuer = format!("http://127.0.0.1:{port}");
        let signer = TestKey::generate();
        let published = Arc::new(RwLock::new(vec![signer.jwk.clone()]));
        let discovery = json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
            "token_endpoint": format!("{issuer}/token"),
            "id_token_signing_alg_values_supported": ["ES256"],
        });
        let jwks = Jwks {
            keys: published.clone(),
            fetches: Arc::default(),
            reachable: Arc::new(AtomicBool::new(true)),
            max_age_s: Arc::default(),
        };
        let (jwks_fetches, reachable) = (jwks.fetches.clone(), jwks.reachable.clone());
        let max_age_s = jwks.max_age_s.clone();
        let server = HttpServer::new(move || {
            let discovery = discovery.clone();
            App::new()
                .app_data(web::Data::new(jwks.clone()))
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(move || {
                        let body = discovery.clone();
                        async move { HttpResponse::Ok().json(body) }
                    }),
                )
                .route("/.well-known/jwks.json", web::get().to(serve_jwks))
        })
        .workers(1)
        .listen(listener)
        .expect("listening on the bound port")
        .run();
        actix_web::rt::spawn(server);
        Self {
            issuer,
            audience: "shop".into(),
            signer,
            published,
            jwks_fetches,
            reachable,
            max_age_s,
        }
    }

    /// How many times the JWKS was asked for (answered or not).
    pub fn jwks_fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Makes the JWKS answer 503 (`false`) or the keys again (`true`).
    pub fn set_reachable(&self, reachable: bool) {
        self.reachable.store(reachable, Ordering::SeqCst);
    }

    /// Publishes `key` beside the others (it does not sign [`TestIssuer::token`]s).
    ///
    /// # Panics
    /// When the key list's lock was poisoned by a panicking test.
    pub fn publish(&self, key: &TestKey) {
        self.published
            .write()
            .expect("the key list lock")
            .push(key.jwk.clone());
    }

    /// Stops publishing `key` (a withdrawal: its tokens must stop passing).
    ///
    /// # Panics
    /// When the key list's lock was poisoned by a panicking test.
    pub fn withdraw(&self, key: &TestKey) {
        self.published
            .write()
            .expect("the key list lock")
            .retain(|jwk| jwk["kid"] != key.kid.as_str());
    }

    /// Answers the JWKS with `Cache-Control: max-age=<seconds>` (`None`: no
    /// Cache-Control, as at start).
    pub fn set_max_age(&self, seconds: Option<u64>) {
        self.max_age_s
            .store(seconds.map_or(0, |s| s.saturating_add(1)), Ordering::SeqCst);
    }

    /// Auth on, trusting this provider by discovery; tokens optional unless `required`.
    pub fn auth_config(&self, required: bool) -> AuthConfig {
        AuthConfig {
            issuer: Some(self.issuer.clone()),
            required,
            ..AuthConfig::off()
        }
    }

    /// A valid token for `subject` with `scopes`, expiring in 15 minutes.
    pub fn token(&self, subject: &str, scopes: &[&str]) -> String {
        self.signer.sign(&self.claims(subject, scopes))
    }

    /// The claims [`TestIssuer::token`] signs, for tests that alter one.
    pub fn claims(&self, subject: &str, scopes: &[&str]) -> Value {
        let now = jsonwebtoken::get_current_timestamp();
        json!({
            "iss": self.issuer, "aud": self.audience, "sub": subject,
            "iat": now, "nbf": now, "exp": now + 900,
            "jti": URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>()),
            "scope": scopes.join(" "),
        })
    }

    /// The key that signs this provider's tokens.
    pub fn signer(&self) -> &TestKey {
        &self.signer
    }

    /// Publishes a new key and signs with it from now on (a rotation).
    ///
    /// # Panics
    /// When the key list's lock was poisoned by a panicking test.
    pub fn rotate(&mut self) -> &TestKey {
        self.signer = TestKey::generate();
        self.publish(&self.signer);
        &self.signer
    }
}

/// The JWKS endpoint's state, shared by its workers.
#[derive(Clone)]
struct Jwks {
    keys: Arc<RwLock<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    reachable: Arc<AtomicBool>,
    /// The `max-age` sent, in seconds, plus one; 0: no Cache-Control.
    max_age_s: Arc<AtomicU64>,
}

async fn serve_jwks(jwks: web::Data<Jwks>) -> HttpResponse {
    jwks.fetches.fetch_add(1, Ordering::SeqCst);
    if !jwks.reachable.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let keys = jwks.keys.read().map(|k| k.clone()).unwrap_or_default();
    let mut response = HttpResponse::Ok();
    if let Some(seconds) = jwks.max_age_s.load(Ordering::SeqCst).checked_sub(1) {
        response.insert_header(("cache-control", format!("public, max-age={seconds}")));
    }
    response.json(json!({ "keys": keys }))
}
