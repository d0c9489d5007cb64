//! The real `identity` binary, at `RUST_LOG=debug`: no password, client
//! secret or issued token ever reaches its output.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use serde_json::json;
use shared_testkit::TestClient;

use crate::helpers::basic;

const PASSWORD: &str = "Tr0ub4dor-and-3-more";
const SECRET: &str = "client-secret-Zq8w";

/// The binary cannot be given port 0 (it refuses it), so take a port the OS
/// says is free and give it back.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address").port()
}

/// Copies `stream` into `output`, and says on `ready` when the server listens.
fn drain(
    stream: impl Read + Send + 'static,
    output: Arc<Mutex<String>>,
    ready: mpsc::Sender<()>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if line.contains("identity listening") {
                let _ = ready.send(());
            }
            let mut output = output.lock().unwrap_or_else(|e| e.into_inner());
            output.push_str(&line);
            output.push('\n');
        }
    })
}

struct Running {
    child: Child,
    readers: Vec<std::thread::JoinHandle<()>>,
    output: Arc<Mutex<String>>,
}

fn start(port: u16, data_dir: &std::path::Path) -> Running {
    let clients =
        json!([{"client_id": "order", "client_secret": SECRET, "scopes": ["inventory:reserve"]}]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_identity"))
        .env_clear()
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("DATA_DIR", data_dir)
        .env("RUST_LOG", "debug")
        .env("IDENTITY_CLIENTS", clients.to_string())
        .env("SHUTDOWN_DRAIN_MS", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the identity binary starts");
    let output = Arc::new(Mutex::new(String::new()));
    let (ready, listening) = mpsc::channel();
    let readers = vec![
        drain(
            child.stdout.take().expect("stdout"),
            output.clone(),
            ready.clone(),
        ),
        drain(child.stderr.take().expect("stderr"), output.clone(), ready),
    ];
    if listening.recv().is_err() {
        let _ = child.wait();
        panic!(
            "identity exited before listening:\n{}",
            output.lock().unwrap_or_else(|e| e.into_inner())
        );
    }
    Running {
        child,
        readers,
        output,
    }
}

#[actix_web::test]
async fn no_secret_or_token_reaches_the_logs_even_at_debug() {
    let data_dir =
        std::env::temp_dir().join(format!("identity-bin-{}", uuid::Uuid::new_v4().simple()));
    let port = free_port();
    let mut running = start(port, &data_dir);
    {
        let text = running
            .output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        assert!(
            text.contains("development only"),
            "the generated key is logged as such:\n{text}"
        );
    }
    let client = TestClient::new(port);

    let account = json!({"email": "ada@example.com", "password": PASSWORD, "name": "Ada"});
    client
        .post_json("/accounts", &account)
        .await
        .assert_status(201);
    let session = client
        .post_json(
            "/sessions",
            &json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    session.assert_status(200);
    let wrong = client
        .post_json(
            "/sessions",
            &json!({"email": "ada@example.com", "password": format!("{PASSWORD}!")}),
        )
        .await;
    wrong.assert_status(401);
    let token = client
        .send(
            actix_web::http::Method::POST,
            "/token",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("authorization", &basic("order", SECRET)),
            ],
            Some(b"grant_type=client_credentials".to_vec()),
        )
        .await;
    token.assert_status(200);

    let _ = running.child.kill();
    let _ = running.child.wait();
    for reader in running.readers.drain(..) {
        let _ = reader.join();
    }
    let output = running
        .output
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    assert!(
        output.contains("/sessions"),
        "requests are logged at all:\n{output}"
    );
    assert!(
        output.contains("DEBUG"),
        "debug lines are written:\n{output}"
    );
    let basic_header = basic("order", SECRET);
    let encoded_credentials = basic_header.trim_start_matches("Basic ");
    for (what, secret) in [
        ("the password", PASSWORD),
        ("the client secret", SECRET),
        ("the Basic credentials", encoded_credentials),
        (
            "the session token",
            session.body["access_token"].as_str().expect("token"),
        ),
        (
            "the client token",
            token.body["access_token"].as_str().expect("token"),
        ),
    ] {
        assert!(!output.contains(secret), "{what} appears in the output");
        // A JWT's signature alone would betray it too.
        if let Some(signature) = secret.rsplit('.').next().filter(|s| s.len() > 20) {
            assert!(
                !output.contains(signature),
                "{what}'s signature appears in the output"
            );
        }
    }
    let _ = std::fs::remove_dir_all(data_dir);
}
