//! A stand-in OpenID provider for tests: its own P-256 keys, a discovery
//! document and a JWKS on a real port-0 server, and tokens it signs.
//!
//! It shares nothing with the identity service, so a service that accepts its
//! tokens is proven to work with any provider by configuration alone.

use std::net::TcpListener;
use std::sync::{Arc, RwLock};

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use serde_json::{Value, json};

use crate::config::AuthConfig;

/// One signing key: the private half and its public JWK.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
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
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            pem,
        }
    }

    /// `claims` signed ES256 with this key, under `kid`.
    ///
    /// # Panics
    /// When the claims do not serialize (they are JSON already).
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
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
        let keys = published.clone();
        let server = HttpServer::new(move || {
            let discovery = discovery.clone();
            let keys = keys.clone();
            App::new()
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(move || {
                        let body = discovery.clone();
                        async move { HttpResponse::Ok().json(body) }
                    }),
                )
                .route(
                    "/.well-known/jwks.json",
                    web::get().to(move || {
                        let keys = keys.read().map(|k| k.clone()).unwrap_or_default();
                        async move { HttpResponse::Ok().json(json!({ "keys": keys })) }
                    }),
                )
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
        }
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
        self.published
            .write()
            .expect("the key list lock")
            .push(self.signer.jwk.clone());
        &self.signer
    }
}
