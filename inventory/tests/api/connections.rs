//! The database connections on PostgreSQL: pooled without a ping per borrow,
//! yet a connection the server closed is replaced. (On SQLite, which has no
//! server to close them, these tests have nothing to check.)

use std::time::{Duration, Instant};

use sqlx::{AnyConnection, Connection};

use crate::helpers::spawn_app;

/// Closes, server side, every connection to the test database but its own.
async fn terminate_connections(url: &str) -> i64 {
    let mut admin = AnyConnection::connect(url).await.expect("connects");
    let closed: i64 = sqlx::query_scalar(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(&mut admin)
    .await
    .expect("terminates");
    let _ = admin.close().await;
    closed
}

#[actix_web::test]
async fn connections_the_server_closed_are_replaced_within_seconds() {
    let app = spawn_app().await;
    if app.db.config.url.starts_with("sqlite:") {
        return;
    }
    for _ in 0..5 {
        app.get("/items").await.assert_status(200);
    }
    assert!(terminate_connections(&app.db.config.url).await > 0);

    // Each broken connection fails what it is used for until its next
    // check drops it; then every request succeeds again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut in_a_row = 0;
    while in_a_row < 30 {
        assert!(Instant::now() < deadline, "still failing after 10 s");
        if app.get("/items").await.status == 200 {
            in_a_row += 1;
        } else {
            in_a_row = 0;
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
