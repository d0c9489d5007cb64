//! Nothing is lost when processes restart or die.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use shared_testkit::{TestClient, eventually};

/// How long a condition below may take to hold.
const PATIENCE: Duration = Duration::from_secs(10);

use crate::helpers::{order_body, spawn_stack, spawn_stack_with};

#[actix_web::test]
async fn orders_stock_reservations_and_last_prices_survive_a_restart_of_every_process() {
    let mut stack = spawn_stack().await;
    let placed = stack.place("c1", &[("A001", 2)]).await;
    placed.assert_status(201);
    let id = placed.body["order_id"].as_str().expect("id").to_owned();

    stack.stop_pricing().await;
    stack.stop_inventory().await;
    stack.restart_order().await;
    stack.start_inventory().await;

    let res = stack.order.client.get(&format!("/orders/{id}")).await;
    res.assert_status(200);
    assert_eq!(res.body, placed.body);
    assert_eq!(stack.stock("A001").await, 48);
    let reservation = stack
        .inventory_client
        .get(&format!("/reservations/{id}"))
        .await;
    assert_eq!(reservation.body["status"], "confirmed");

    // Pricing is still down: the price seen before the restart is still known.
    let res = stack.place("c1", &[("A001", 1)]).await;
    res.assert_status(201);
    assert_eq!(res.body["pricing"], "fallback");
    assert_eq!(res.body["items"][0]["unit_price"], 899.99);
}

#[actix_web::test]
async fn orders_placed_before_lines_moved_into_their_row_keep_their_lines() {
    let mut stack = spawn_stack().await;
    let placed = stack.place("c1", &[("A001", 2), ("B001", 1)]).await;
    placed.assert_status(201);
    let id = placed.body["order_id"].as_str().expect("id").to_owned();

    // Put the order back the way the first schema kept it: lines in order_items.
    let db = shared_db::Database::connect(&stack.order_config().database)
        .await
        .expect("order database");
    let body = &placed.body;
    for (line_no, item) in body["items"].as_array().expect("items").iter().enumerate() {
        let cents = |v: &Value| {
            let price = v
                .as_f64()
                .and_then(shared_vocabulary::money::Money::from_decimal);
            price.expect("a price in cents").cents()
        };
        sqlx::query(
            "INSERT INTO order_items (order_id, line_no, sku, name, quantity, unit_price_cents, \
             discount_percent, line_total_cents) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(line_no as i64)
        .bind(item["sku"].as_str())
        .bind(item["name"].as_str())
        .bind(item["quantity"].as_i64())
        .bind(cents(&item["unit_price"]))
        .bind(item["discount_percent"].as_i64())
        .bind(cents(&item["line_total"]))
        .execute(&mut *db.write().await.expect("connection"))
        .await
        .expect("legacy line");
    }
    sqlx::query("UPDATE orders SET lines = NULL WHERE id = $1")
        .bind(&id)
        .execute(&mut *db.write().await.expect("connection"))
        .await
        .expect("legacy order");
    drop(db);

    stack.restart_order().await;
    let res = stack.order.client.get(&format!("/orders/{id}")).await;
    res.assert_status(200);
    assert_eq!(res.body, placed.body);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The real order binary, so that the test can SIGKILL it.
fn order_process(config: &order::config::Config, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_order"))
        .env_clear()
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("DATABASE_URL", &config.database.url)
        .env("INVENTORY_URL", &config.inventory_url)
        .env("PRICING_URL", &config.pricing_url)
        .env("RESERVATION_TTL_MS", "1500")
        .env("REQUEST_TIMEOUT_MS", "20000")
        .env("ORDER_DEADLINE_MS", "60000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("order binary starts")
}

async fn is_ready(port: u16) -> bool {
    awc::Client::new()
        .get(format!("http://127.0.0.1:{port}/health/ready"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

#[actix_web::test]
async fn an_order_process_killed_mid_saga_loses_no_stock_and_its_order_is_resolved_on_restart() {
    let stack = spawn_stack_with(|c| {
        c.inventory.reservation_ttl = Duration::from_millis(1500);
        // The saga will sit in the pricing call, after reserving, when the process dies.
        c.pricing.server.chaos = shared_testkit::slow(Duration::from_secs(15));
    })
    .await;
    let port = free_port();
    let mut process = order_process(stack.order_config(), port);
    eventually("the order process is ready", PATIENCE, || is_ready(port)).await;

    // Fire an order and do not wait for its answer: it will never come.
    let body = order_body("crash", &[("A001", 3)]);
    actix_web::rt::spawn(async move {
        let _ = awc::Client::new()
            .post(format!("http://127.0.0.1:{port}/orders"))
            .timeout(Duration::from_secs(30))
            .send_json(&body)
            .await;
    });
    eventually("stock is reserved", PATIENCE, || async {
        stack.stock("A001").await == 47
    })
    .await;

    process.kill().expect("SIGKILL");
    process.wait().expect("reaped");

    // Inventory gives the stock back when the reservation expires.
    eventually("the reservation expires", PATIENCE, || async {
        stack.stock("A001").await == 50
    })
    .await;

    // The restarted process resolves the order it left pending.
    let mut restarted = order_process(stack.order_config(), port);
    eventually("the order process is ready again", PATIENCE, || {
        is_ready(port)
    })
    .await;
    let client = TestClient::new(port);
    let order: Value = loop_until_resolved(&client).await;
    assert_eq!(order["status"], "failed");
    assert_eq!(
        stack.stock("A001").await,
        50,
        "the failed order holds nothing"
    );
    let _ = restarted.kill();
    let _ = restarted.wait();
}

async fn loop_until_resolved(client: &TestClient) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = client.get("/orders?customer_id=crash").await;
        let order = res.body["orders"][0].clone();
        if order["status"] != "pending" && !order.is_null() {
            return order;
        }
        assert!(Instant::now() < deadline, "order still {}", order["status"]);
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The outbox rows, as (subject, the order id in the event).
async fn outbox_rows(db: &shared_db::Database) -> Vec<(String, String)> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT subject, event FROM outbox ORDER BY id")
            .fetch_all(&mut *db.read().await.expect("reader"))
            .await
            .expect("outbox");
    rows.into_iter()
        .map(|(subject, event)| {
            let event: serde_json::Value = serde_json::from_str(&event).expect("json");
            (
                subject,
                event["data"]["order_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

#[actix_web::test]
async fn an_order_completes_with_its_event_or_not_at_all() {
    use order::domain::{NewOrder, OrderId, OrderStatus, PricingSource};
    use shared_events::Outbox;
    let db = shared_testkit::TestDatabase::create("order").await;
    let store = order::store::Store::connect(&db.config)
        .await
        .expect("store")
        .with_events(Outbox::on(), order::events::order_event);
    let new = NewOrder::parse("c-1", &[("A001".to_owned(), 1)]).expect("order");
    let (placed, ended) = (OrderId::generate(), OrderId::generate());
    for id in [&placed, &ended] {
        store
            .record_pending(id, &new, None, 1)
            .await
            .expect("pending");
    }
    assert!(
        store
            .end(&ended, OrderStatus::Rejected, "test", 2)
            .await
            .expect("ends")
    );

    let mut order = store.get(&placed).await.expect("get").expect("there");
    (order.status, order.pricing, order.updated_at) =
        (OrderStatus::Confirmed, Some(PricingSource::Live), 3);
    store
        .complete(&order, &Default::default(), 3)
        .await
        .expect("completes");
    let stored = store.get(&placed).await.expect("get").expect("there");
    assert_eq!(stored.status, OrderStatus::Confirmed);

    // No longer pending: neither the row nor the outbox changes.
    let mut late = store.get(&ended).await.expect("get").expect("there");
    (late.status, late.updated_at) = (OrderStatus::Confirmed, 4);
    let refused = store.complete(&late, &Default::default(), 4).await;
    assert!(refused.is_err(), "a rejected order cannot be completed");
    let ended_row = store.get(&ended).await.expect("get").expect("there");
    assert_eq!(ended_row.status, OrderStatus::Rejected);
    let rows = outbox_rows(store.database()).await;
    let expected = [
        ("shop.order.rejected".to_owned(), ended.as_str().to_owned()),
        (
            "shop.order.confirmed".to_owned(),
            placed.as_str().to_owned(),
        ),
    ];
    assert_eq!(
        rows, expected,
        "one event per change made, none for the refused one"
    );
}
