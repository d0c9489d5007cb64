//! Keys and tokens fetched from an OpenID provider over https, on real TLS
//! sockets: a provider served by actix-web over rustls with a CA and a
//! certificate for 127.0.0.1 made at test time (rcgen), trusted through
//! `AUTH_CA_FILE`, in front of the stack of `shared_server::start`.
//!
//! The same provider, not trusted, must leave the service answering 503
//! `auth_unavailable` (the fault is ours, not the caller's), never a 500.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use shared_auth::AuthConfig;
use shared_auth::client::{FetchError, TokenSource};
use shared_auth::{Authorized, Scope};
use shared_config::Env;
use shared_http::metrics::Registry;
use shared_http::service::ServiceInfo;
use shared_server::ServerConfig;
use shared_testkit::issuer::TestKey;
use shared_testkit::{Spawned, captured_logs, init_tracing, spawn};

/// `Basic base64("order:s3cret")`, the only client the token endpoint knows.
const ORDER_CLIENT: &str = "Basic b3JkZXI6czNjcmV0";

/// A CA made for one test: its certificate (PEM) and its signer.
struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().expect("a CA key");
        let cert = params.self_signed(&key).expect("a self-signed CA");
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for 127.0.0.1 and its key, signed by this CA.
    fn server_certificate(&self) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("parameters");
        let key = KeyPair::generate().expect("a server key");
        let cert = params.signed_by(&key, &self.issuer).expect("signing");
        let key = PrivatePkcs8KeyDer::from(key.serialize_der());
        (cert.der().clone(), key.into())
    }

    /// This CA in a PEM file, as `AUTH_CA_FILE` names it.
    fn file(&self) -> TempFile {
        let path = std::env::temp_dir().join(format!("ca-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&path, &self.pem).expect("writing the CA file");
        TempFile(path)
    }
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// An OpenID provider on https: discovery, JWKS and a client credentials
/// token endpoint, counting what it served.
struct HttpsProvider {
    /// `https://127.0.0.1:<port>`.
    issuer: String,
    ca: TestCa,
    signer: TestKey,
    served: Arc<AtomicUsize>,
}

impl HttpsProvider {
    fn start() -> Self {
        let ca = TestCa::new("test provider CA");
        let (cert, key) = ca.server_certificate();
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("a usable certificate");
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("an address").port();
        let issuer = format!("https://127.0.0.1:{port}");
        let signer = TestKey::generate();
        let served = Arc::new(AtomicUsize::new(0));
        let documents = Documents {
            discovery: json!({
                "issuer": issuer, "jwks_uri": format!("{issuer}/jwks"),
                "token_endpoint": format!("{issuer}/token"),
            }),
            jwks: json!({ "keys": [signer.jwk] }),
            served: served.clone(),
        };
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(documents.clone()))
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(|d: web::Data<Documents>| async move { d.serve(&d.discovery) }),
                )
                .route(
                    "/jwks",
                    web::get().to(|d: web::Data<Documents>| async move { d.serve(&d.jwks) }),
                )
                .route("/token", web::post().to(token))
        })
        .workers(1)
        .listen_rustls_0_23(listener, tls)
        .expect("listening over TLS")
        .run();
        actix_web::rt::spawn(server);
        Self {
            issuer,
            ca,
            signer,
            served,
        }
    }

    /// How many requests were answered (each after a completed handshake).
    fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    /// A valid token for `subject` with `scopes`.
    fn token(&self, subject: &str, scopes: &[&str]) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        self.signer.sign(&json!({
            "iss": self.issuer, "aud": "shop", "sub": subject,
            "iat": now, "nbf": now, "exp": now + 900, "scope": scopes.join(" "),
        }))
    }

    /// The settings of a service trusting this provider (discovery over
    /// https), read as from the environment: `AUTH_CA_FILE` when `ca_file`.
    fn auth_config(&self, ca_file: Option<&TempFile>) -> AuthConfig {
        let mut pairs = vec![
            ("AUTH_ISSUER", self.issuer.as_str()),
            ("AUTH_REQUIRED", "true"),
            ("AUTH_CLIENT_ID", "order"),
            ("AUTH_CLIENT_SECRET", "s3cret"),
        ];
        let path = ca_file.map(|f| f.0.to_str().expect("a UTF-8 path").to_owned());
        if let Some(path) = &path {
            pairs.push(("AUTH_CA_FILE", path));
        }
        AuthConfig::from_env(&Env::from_pairs(pairs)).expect("valid settings")
    }
}

#[derive(Clone)]
struct Documents {
    discovery: Value,
    jwks: Value,
    served: Arc<AtomicUsize>,
}

impl Documents {
    fn serve(&self, body: &Value) -> HttpResponse {
        self.served.fetch_add(1, Ordering::SeqCst);
        HttpResponse::Ok().json(body)
    }
}

async fn token(req: HttpRequest, form: String, d: web::Data<Documents>) -> HttpResponse {
    let authorization = req.headers().get("authorization").map(|v| v.as_bytes());
    if authorization != Some(ORDER_CLIENT.as_bytes()) || form != "grant_type=client_credentials" {
        return HttpResponse::Unauthorized().json(json!({"error": "invalid_client"}));
    }
    d.serve(&json!({"access_token": "t-1", "token_type": "Bearer", "expires_in": 900}))
}

struct WriteThings;

impl Scope for WriteThings {
    const NAME: &'static str = "things:write";
}

async fn write_thing(_: Authorized<WriteThings>) -> HttpResponse {
    HttpResponse::Created().json(json!({"ok": true}))
}

/// A service with one route needing `things:write`, verifying with `auth`.
fn service(auth: AuthConfig) -> Spawned {
    init_tracing();
    let mut config = ServerConfig::for_tests();
    config.auth = auth;
    let info = ServiceInfo::new("tls-test", "0.0.0");
    let server = shared_server::start(info, &config, Registry::default(), |cfg| {
        cfg.map(|cfg| cfg.route("/things", web::post().to(write_thing)));
    })
    .expect("the server starts");
    spawn(server)
}

#[actix_web::test]
async fn a_service_accepts_tokens_whose_keys_came_over_https() {
    let provider = HttpsProvider::start();
    let ca_file = provider.ca.file();
    let app = service(provider.auth_config(Some(&ca_file)));
    let token = provider.token("c1", &["things:write"]);
    app.client
        .with_bearer(&token)
        .post_json("/things", &json!({}))
        .await
        .assert_status(201);
    // Discovery, then the keys: both over https.
    assert_eq!(provider.served(), 2);
    app.client
        .with_bearer(&provider.token("c1", &["things:read"]))
        .post_json("/things", &json!({}))
        .await
        .assert_problem(403, "forbidden");
    app.client
        .post_json("/things", &json!({}))
        .await
        .assert_problem(401, "unauthorized");
}

#[actix_web::test]
async fn an_untrusted_certificate_is_a_503_never_a_500() {
    let provider = HttpsProvider::start();
    let token = provider.token("c1", &["things:write"]);
    // Mozilla's roots only; then another CA than the provider's.
    let stranger = TestCa::new("another CA").file();
    for auth in [
        provider.auth_config(None),
        provider.auth_config(Some(&stranger)),
    ] {
        let app = service(auth);
        let response = app
            .client
            .with_bearer(&token)
            .post_json("/things", &json!({}))
            .await;
        response.assert_problem(503, "auth_unavailable");
    }
    assert_eq!(provider.served(), 0, "no request got past a handshake");
    // Refused for its certificate (not, say, a closed port), and logged so.
    let refusals = captured_logs()
        .iter()
        .map(Value::to_string)
        .filter(|line| line.contains(&provider.issuer))
        .filter(|line| line.contains("invalid peer certificate: UnknownIssuer"))
        .count();
    assert_eq!(refusals, 2);
}

#[actix_web::test]
async fn the_service_token_is_fetched_over_https() {
    let provider = HttpsProvider::start();
    let ca_file = provider.ca.file();
    let source = TokenSource::new(&provider.auth_config(Some(&ca_file))).expect("credentials");
    let token = source.token().await.expect("a token over https");
    assert_eq!(token.secret(), "t-1");
    // Discovery for the token endpoint, then the token.
    assert_eq!(provider.served(), 2);

    let untrusting = TokenSource::new(&provider.auth_config(None)).expect("credentials");
    let error = untrusting.token().await.expect_err("an untrusted provider");
    assert!(matches!(error, FetchError::Discovery(_)), "{error:?}");
    assert_eq!(provider.served(), 2);
}
