//! Signing keys: the first configured one signs, all are published; a
//! generated key survives a restart.

use identity::keys::{KeySet, KeySource, generate_pem};
use shared_testkit::{TestDatabase, init_tracing, spawn};

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

    let kid = |server: &shared_testkit::Spawned| {
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

/// A key published in this repository, kept for the refusal's own test.
fn published_key_file() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/published-signing-key.pem")
}

#[actix_web::test]
async fn a_key_published_in_this_repository_stops_start_up_unless_allowed() {
    init_tracing();
    let db = TestDatabase::create("identity").await;
    let mut config = test_config(&db);
    config.keys = KeySource::Files(vec![published_key_file()]);
    let err = identity::startup::build(config.clone())
        .await
        .err()
        .expect("start-up fails");
    let message = format!("{err:#}");
    assert!(
        message.contains("published-signing-key.pem")
            && message.contains("IDENTITY_ALLOW_PUBLISHED_KEYS"),
        "{message}"
    );

    // Passed as PEM text, the variable is named instead of a file.
    let pem = std::fs::read_to_string(published_key_file()).expect("the fixture");
    config.keys = KeySource::Pem(format!("{}\n{pem}", generate_pem().expect("key")));
    let err = identity::startup::build(config.clone())
        .await
        .err()
        .expect("start-up fails for a published key second in the list too");
    assert!(
        format!("{err:#}").contains("IDENTITY_SIGNING_KEYS"),
        "{err:#}"
    );

    config.allow_published_keys = true;
    let server = spawn(
        identity::startup::build(config)
            .await
            .expect("allowed: starts"),
    );
    server
        .client
        .get("/.well-known/jwks.json")
        .await
        .assert_status(200);
}

/// Every private key block in the files git tracks (or, outside a checkout,
/// in the tree), as PEM text with the indentation and string escapes of the
/// file it sits in taken off.
fn private_keys_in_the_repository() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf();
    let mut keys = Vec::new();
    for path in repository_files(&root) {
        let Ok(text) = std::fs::read_to_string(root.join(&path)) else {
            continue; // not text
        };
        let text = text.replace("\\n", "\n");
        let mut block: Option<Vec<&str>> = None;
        for line in text
            .lines()
            .map(|l| l.trim().trim_matches(|c| c == '"' || c == '\''))
        {
            if line.starts_with("-----BEGIN") && line.ends_with("PRIVATE KEY-----") {
                block = Some(vec![line]);
            } else if let Some(lines) = block.as_mut() {
                lines.push(line);
                if line.starts_with("-----END") {
                    keys.push((path.clone(), lines.join("\n") + "\n"));
                    block = None;
                }
            }
        }
    }
    keys
}

fn repository_files(root: &std::path::Path) -> Vec<String> {
    let listed = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|out| out.status.success());
    if let Some(out) = listed {
        return String::from_utf8_lossy(&out.stdout)
            .split('\0')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
    }
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "target" || name == "node_modules" {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(relative) = path.strip_prefix(root) {
                files.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    files
}

#[test]
fn every_private_key_in_the_repository_is_refused_at_start_up() {
    let found = private_keys_in_the_repository();
    assert!(
        found
            .iter()
            .any(|(path, _)| path.ends_with("published-signing-key.pem")),
        "the scan finds the fixture: {:?}",
        found.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    for (path, pem) in found {
        // A key identity cannot load (RSA, a placeholder) cannot sign its
        // tokens; one it can load must be on the list it refuses.
        let Ok(keys) = KeySet::load(&KeySource::Pem(pem)) else {
            continue;
        };
        for jwk in keys.jwks() {
            assert!(
                identity::keys::PUBLISHED_KEYS.contains(&jwk.kid.as_str()),
                "{path} holds a private key (kid {}) missing from identity::keys::PUBLISHED_KEYS",
                jwk.kid
            );
        }
    }
}
