//! Starts the identity service on a free port and a fresh database, and
//! checks the tokens it issues the way a verifier would: with the JWKS.

use std::num::NonZeroU32;
use std::time::Duration;

use actix_web::http::Method;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use identity::clients::{ClientConfig, Secret};
use identity::config::Config;
use identity::domain::{Email, Scope};
use identity::hashing::HashingSettings;
use identity::keys::{KeySource, generate_pem};
use identity::seed::SeedAccount;
use identity::throttle::ThrottleSettings;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use shared_server::ServerConfig;
use shared_testkit::{Spawned, TestClient, TestDatabase, TestResponse, init_tracing, spawn};

pub const ISSUER: &str = "http://identity.test";
pub const PASSWORD: &str = "correct horse battery";
pub const OPERATOR: &str = "ops@example.com";
/// A client with two scopes.
pub const CLIENT_ID: &str = "order";
pub const CLIENT_SECRET: &str = "order-s3cret";

pub struct TestApp {
    pub server: Spawned,
    db: TestDatabase,
}

/// Identity's settings for tests: a free port, one fresh key, one client, one operator.
pub fn test_config(db: &TestDatabase) -> Config {
    Config {
        server: ServerConfig::for_tests(),
        database: db.config.clone(),
        issuer: ISSUER.into(),
        audience: "shop".into(),
        keys: KeySource::Pem(generate_pem().expect("a key")),
        allow_published_keys: false,
        clients: vec![ClientConfig {
            client_id: CLIENT_ID.into(),
            client_secret: Secret::new(CLIENT_SECRET),
            scopes: vec![Scope::InventoryReserve, Scope::InventoryWrite],
        }],
        operators: vec![Email::parse(OPERATOR).expect("an email")],
        accounts: SeedAccount::parse_list(&format!(
            r#"[{{"email": "{OPERATOR}", "password": "{PASSWORD}", "name": "Operator"}}]"#
        ))
        .expect("the operator account")
        .into(),
        token_ttl: Duration::from_secs(900),
        sign_in_throttle: ThrottleSettings {
            burst: NonZeroU32::new(5).expect("non-zero"),
            interval: Duration::from_secs(12),
        },
        // Tests run side by side on few cores: a generous wait keeps 503s
        // for the tests that ask for them.
        hashing: HashingSettings {
            max_in_flight: 2,
            queue_wait: Duration::from_secs(30),
        },
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    init_tracing();
    let db = TestDatabase::create("identity").await;
    let server = spawn_on(&db, adjust).await;
    TestApp { server, db }
}

/// Identity on `db` (a restart, when it served `db` before).
pub async fn spawn_on(db: &TestDatabase, adjust: impl FnOnce(&mut Config)) -> Spawned {
    let mut config = test_config(db);
    adjust(&mut config);
    spawn(
        identity::startup::build(config)
            .await
            .expect("identity starts"),
    )
}

/// `Authorization: Basic` as RFC 6749 §2.3.1 builds it: each part form-urlencoded.
pub fn basic(id: &str, secret: &str) -> String {
    let encode = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(id), encode(secret)))
    )
}

impl TestApp {
    /// Stops identity and starts it again on the same database, configured anew.
    pub async fn restart_with(&mut self, adjust: impl FnOnce(&mut Config)) {
        self.server.stop().await;
        self.server = spawn_on(&self.db, adjust).await;
    }

    pub fn client(&self) -> &TestClient {
        &self.server.client
    }

    pub async fn sign_up(&self, email: &str, password: &str) -> TestResponse {
        self.client()
            .post_json(
                "/accounts",
                &json!({"email": email, "password": password, "name": "Ada"}),
            )
            .await
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> TestResponse {
        self.client()
            .post_json("/sessions", &json!({"email": email, "password": password}))
            .await
    }

    /// `POST /token` with a form body and, when given, an Authorization header.
    pub async fn token(&self, authorization: Option<&str>, form: &str) -> TestResponse {
        let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
        if let Some(value) = authorization {
            headers.push(("authorization", value));
        }
        self.client()
            .send(
                Method::POST,
                "/token",
                &headers,
                Some(form.as_bytes().to_vec()),
            )
            .await
    }

    /// The claims of `token`, verified with the key the JWKS publishes under its `kid`.
    pub async fn verify(&self, token: &str) -> Value {
        let jwks: JwkSet =
            serde_json::from_value(self.client().get("/.well-known/jwks.json").await.body)
                .expect("a JWK set");
        let header = jsonwebtoken::decode_header(token).expect("a JWT header");
        assert_eq!(header.alg, Algorithm::ES256);
        let kid = header.kid.expect("a kid");
        let jwk = jwks.find(&kid).expect("the kid is published");
        let key = DecodingKey::from_jwk(jwk).expect("a usable JWK");
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&["shop"]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Value>(token, &key, &validation)
            .expect("the token verifies")
            .claims
    }

    /// The scopes of a token this identity issued, sorted.
    pub async fn scopes_of(&self, token: &str) -> Vec<String> {
        let claims = self.verify(token).await;
        let mut scopes: Vec<String> = claims["scope"]
            .as_str()
            .expect("scope")
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        scopes.sort_unstable();
        scopes
    }

    /// The value of one metric series (`name{labels}`), 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.client().get("/metrics").await.text;
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0.0, |v| v.trim().parse().expect("a number"))
    }
}
