//! The database connections on PostgreSQL: pooled without a ping per borrow,
//! yet a connection the server closed is replaced, and a transaction dropped
//! unfinished frees its rows at once. (On SQLite, which has no server to
//! close them and one writer, these tests have nothing to check.)

use std::time::{Duration, Instant};

use shared_db::Database;
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

#[actix_web::test]
async fn a_transaction_dropped_unfinished_frees_its_rows_at_once() {
    let app = spawn_app().await;
    let url = &app.db.config.url;
    if url.starts_with("sqlite:") {
        return;
    }
    let db = Database::connect(&app.db.config).await.expect("connects");
    {
        let mut conn = db.write().await.expect("a connection");
        let mut tx = conn.begin().await.expect("begins");
        sqlx::query("UPDATE items SET stock = stock + 1 WHERE sku = 'A001'")
            .execute(&mut *tx)
            .await
            .expect("locks A001");
        // Dropped unfinished here, as by a request cancelled mid-way; the
        // connection is not borrowed again.
    }
    let mut other = AnyConnection::connect(url).await.expect("connects");
    sqlx::query("SET lock_timeout = '5s'")
        .execute(&mut other)
        .await
        .expect("sets");
    sqlx::query("UPDATE items SET stock = stock - 1 WHERE sku = 'A001'")
        .execute(&mut other)
        .await
        .expect("A001 was freed by the rollback");
    let listed = app.get("/items?skus=A001").await;
    assert_eq!(
        listed.body["items"][0]["stock"], 49,
        "the +1 was rolled back"
    );
}
