use std::time::Duration;

use futures::future::join_all;
use inventory::config::Config;
use inventory::domain::Catalog;
use shared_server::ServerConfig;
use shared_testkit::{TestDatabase, init_tracing, spawn};

use crate::helpers::test_config;

#[actix_web::test]
async fn replicas_starting_together_on_a_fresh_database_all_come_up_and_seed_once() {
    init_tracing();
    let db = TestDatabase::create("inventory").await;
    let config = test_config(&db);
    let builds = (0..3).map(|_| inventory::startup::build(config.clone()));
    let servers: Vec<_> = join_all(builds)
        .await
        .into_iter()
        .map(|built| spawn(built.expect("every replica starts")))
        .collect();
    for server in &servers {
        server.client.get("/health/ready").await.assert_status(200);
        let items = server.client.get("/items").await;
        assert_eq!(items.body["count"], Catalog::shipped().items.len());
        assert_eq!(server.client.get("/items/A001").await.body["stock"], 50);
    }
}

#[actix_web::test]
async fn an_unreachable_database_stops_start_up_with_a_clear_error() {
    init_tracing();
    let config = Config {
        server: ServerConfig::for_tests(),
        database: shared_db::DatabaseConfig {
            url: "postgres://nobody:secret@127.0.0.1:1/none".into(),
            max_connections: 1,
        },
        catalog: Catalog::shipped(),
        reservation_ttl: Duration::from_secs(60),
        item_cache_ttl: std::time::Duration::from_millis(500),
        service_token: None,
        events: shared_events::EventsConfig::off(),
    };
    let err = inventory::startup::build(config)
        .await
        .err()
        .expect("start-up fails");
    let message = format!("{err:#}");
    assert!(
        message.contains("connecting to the postgres database"),
        "{message}"
    );
    assert!(
        !message.contains("secret"),
        "the password stays out of the message: {message}"
    );
}

#[actix_web::test]
async fn reservations_made_before_lines_moved_into_their_row_keep_their_lines() {
    init_tracing();
    let db = TestDatabase::create("inventory").await;
    let config = test_config(&db);
    let start = || async {
        spawn(
            inventory::startup::build(config.clone())
                .await
                .expect("starts"),
        )
    };
    let mut server = start().await;
    let body = serde_json::json!({
        "reservation_id": "r-legacy",
        "lines": [{"sku": "A001", "quantity": 2}, {"sku": "B001", "quantity": 3}],
    });
    let reserved = server.client.post_json("/reservations", &body).await;
    reserved.assert_status(201);
    server.stop().await;

    // Put the reservation back the way the first schema kept it.
    let database = shared_db::Database::connect(&config.database)
        .await
        .expect("inventory database");
    let mut conn = database.write().await.expect("connection");
    for (sku, quantity) in [("A001", 2_i64), ("B001", 3)] {
        sqlx::query(
            "INSERT INTO reservation_lines (reservation_id, sku, quantity) VALUES ($1, $2, $3)",
        )
        .bind("r-legacy")
        .bind(sku)
        .bind(quantity)
        .execute(&mut *conn)
        .await
        .expect("legacy line");
    }
    sqlx::query("UPDATE reservations SET lines = NULL WHERE id = 'r-legacy'")
        .execute(&mut *conn)
        .await
        .expect("legacy reservation");
    drop(conn);
    drop(database);

    let server = start().await;
    let res = server.client.get("/reservations/r-legacy").await;
    res.assert_status(200);
    assert_eq!(res.body["items"], reserved.body["items"]);
    // Released, the lines moved over give the stock back.
    assert_eq!(server.client.get("/items/A001").await.body["stock"], 48);
    server
        .client
        .delete("/reservations/r-legacy")
        .await
        .assert_status(204);
    assert_eq!(server.client.get("/items/A001").await.body["stock"], 50);
    assert_eq!(server.client.get("/items/B001").await.body["stock"], 20);
}
