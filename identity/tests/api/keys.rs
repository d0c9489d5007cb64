//! Signing keys: the first configured one signs, all are published; a
//! generated key survives a restart.

use identity::keys::{KeySet, KeySource, generate_pem};
use shared::testing::{TestDatabase, init_tracing, spawn};

use crate::helpers::{CLIENT_ID, CLIENT_SECRET, basic, test_config};

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("identity-keys-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}

fn kid_of(pem: &str) -> String {
    KeySet::load(&KeySource::Pem(pem.to_owned()))
        .expect("a key")
        .current()
        .kid()
        .to_owned()
}

#[actix_web::test]
async fn with_two_key_files_the_first_signs_and_both_are_published() {
    init_tracing();
    let dir = temp_dir();
    let (new, old) = (generate_pem().expect("key"), generate_pem().expect("key"));
    std::fs::write(dir.join("new.pem"), &new).expect("written");
    std::fs::write(dir.join("old.pem"), &old).expect("written");
    let db = TestDatabase::create("identity").await;
    let mut config = test_config(&db);
    config.keys = KeySource::Files(vec![dir.join("new.pem"), dir.join("old.pem")]);
    let server = spawn(identity::startup::build(config).await.expect("starts"));

    let jwks = server.client.get("/.well-known/jwks.json").await;
    jwks.assert_status(200);
    assert_eq!(
        jwks.header("cache-control").as_deref(),
        Some("public, max-age=300")
    );
    let kids: Vec<&str> = jwks.body["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid"))
        .collect();
    assert_eq!(kids, [kid_of(&new), kid_of(&old)]);
    for key in jwks.body["keys"].as_array().expect("keys") {
        assert_eq!(key["kty"], "EC");
        assert_eq!(key["crv"], "P-256");
        assert_eq!(key["alg"], "ES256");
        assert_eq!(key["use"], "sig");
        assert!(key.get("d").is_none(), "no private part");
    }

    let token = server
        .client
        .send(
            actix_web::http::Method::POST,
            "/token",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("authorization", &basic(CLIENT_ID, CLIENT_SECRET)),
            ],
            Some(b"grant_type=client_credentials".to_vec()),
        )
        .await;
    token.assert_status(200);
    let header = jsonwebtoken::decode_header(token.body["access_token"].as_str().expect("token"))
        .expect("a header");
    assert_eq!(header.kid.as_deref(), Some(kid_of(&new).as_str()));
    let _ = std::fs::remove_dir_all(dir);
}

#[actix_web::test]
async fn a_generated_key_is_kept_private_and_reused_after_a_restart() {
    init_tracing();
    let dir = temp_dir();
    let path = dir.join(identity::config::GENERATED_KEY_FILE);
    let db = TestDatabase::create("identity").await;
    let mut config = test_config(&db);
    config.keys = KeySource::Generated(path.clone());

    let kid = |server: &shared::testing::Spawned| {
        let client = server.client.clone();
        async move {
            let jwks = client.get("/.well-known/jwks.json").await;
            assert_eq!(jwks.body["keys"].as_array().map(Vec::len), Some(1));
            jwks.body["keys"][0]["kid"]
                .as_str()
                .expect("kid")
                .to_owned()
        }
    };
    let mut first = spawn(
        identity::startup::build(config.clone())
            .await
            .expect("starts"),
    );
    let first_kid = kid(&first).await;
    first.stop().await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .expect("the key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let second = spawn(
        identity::startup::build(config)
            .await
            .expect("starts again"),
    );
    assert_eq!(kid(&second).await, first_kid);
    let _ = std::fs::remove_dir_all(dir);
}

#[actix_web::test]
async fn a_key_file_that_is_not_a_key_stops_start_up_naming_it() {
    init_tracing();
    let dir = temp_dir();
    std::fs::write(
        dir.join("bad.pem"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .expect("written");
    let db = TestDatabase::create("identity").await;
    let mut config = test_config(&db);
    config.keys = KeySource::Files(vec![dir.join("bad.pem")]);
    let err = identity::startup::build(config)
        .await
        .err()
        .expect("start-up fails");
    let message = format!("{err:#}");
    assert!(message.contains("bad.pem"), "{message}");
    let _ = std::fs::remove_dir_all(dir);
}
