//! A database outage: identity on a PostgreSQL of the test's own, which the
//! test stops and starts. Sign-ins (a read) and sign-ups (a write) meet it
//! as a 503 `database_unavailable` with `Retry-After`, never a 500; readiness
//! fails and liveness does not; once it is back, identity serves again.
//! PostgreSQL pass only (`TEST_DATABASE_URL`): PostgreSQL is installed there.

use std::time::Duration;

use serde_json::json;
use shared_testkit::postgres::PostgresCluster;
use shared_testkit::{TestResponse, eventually};

use crate::helpers::{OPERATOR, PASSWORD, spawn_app_with};

fn assert_database_unavailable(res: &TestResponse) {
    res.assert_problem(503, "database_unavailable");
    assert_eq!(res.header("retry-after").as_deref(), Some("1"));
}

#[actix_web::test]
async fn a_stopped_database_is_a_503_with_retry_after_and_identity_serves_again_once_it_is_back() {
    if std::env::var("TEST_DATABASE_URL").map_or(true, |url| url.is_empty()) {
        eprintln!("skipped: needs PostgreSQL (the PostgreSQL pass, TEST_DATABASE_URL)");
        return;
    }
    let cluster = PostgresCluster::start().await;
    let name = format!("identity_{}", uuid::Uuid::new_v4().simple());
    let url = cluster.create_database(&name).await;
    let app = spawn_app_with(move |config| config.database.url = url).await;
    let client = &app.server.client;
    let sign_in = json!({"email": OPERATOR, "password": PASSWORD});
    let sign_up = json!({"email": "ada@example.com", "password": PASSWORD, "name": "Ada"});
    client
        .post_json("/sessions", &sign_in)
        .await
        .assert_status(200);

    cluster.stop().await;
    assert_database_unavailable(&client.post_json("/sessions", &sign_in).await);
    assert_database_unavailable(&client.post_json("/accounts", &sign_up).await);
    client
        .get("/health/ready")
        .await
        .assert_problem(503, "not_ready");
    client.get("/health/live").await.assert_status(200);

    cluster.resume().await;
    eventually(
        "identity to serve again",
        Duration::from_secs(10),
        async || {
            let res = client.post_json("/sessions", &sign_in).await;
            assert_ne!(res.status.as_u16(), 500, "{}", res.text);
            res.status.is_success()
        },
    )
    .await;
    client
        .post_json("/accounts", &sign_up)
        .await
        .assert_status(201);
    client.get("/health/ready").await.assert_status(200);
}
