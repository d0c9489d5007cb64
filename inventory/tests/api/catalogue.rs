//! Catalogue management (`PUT /items/{sku}`, `POST /items/{sku}/stock`,
//! `GET /items/{sku}/history`): who may, what it does to stock, and the
//! history it leaves.

use futures::future::join_all;
use serde_json::{Value, json};
use shared_testkit::issuer::TestIssuer;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

const WRITE: &str = "inventory:write";

async fn app_trusting(issuer: &TestIssuer, required: bool) -> TestApp {
    let auth = issuer.auth_config(required);
    spawn_app_with(move |config| config.server.auth = auth).await
}

fn kinds(history: &Value) -> Vec<&str> {
    history["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["kind"].as_str().expect("kind"))
        .collect()
}

#[actix_web::test]
async fn put_creates_an_item_with_no_stock_then_updates_it() {
    let app = spawn_app().await;
    let client = &app.server.client;
    let created = app
        .put_item(
            client,
            "D001",
            &json!({"name": "Lamp", "category": "home-office"}),
        )
        .await;
    created.assert_status(201);
    assert_eq!(
        created.body,
        json!({"sku": "D001", "name": "Lamp", "category": "home-office", "stock": 0})
    );
    let renamed = app
        .put_item(
            client,
            "D001",
            &json!({"name": "Desk Lamp", "category": "furniture"}),
        )
        .await;
    renamed.assert_status(200);
    assert_eq!(renamed.body["name"], "Desk Lamp");
    let item = client.get("/items/D001").await;
    assert_eq!(item.body["category"], "furniture");
    // Renaming a shipped item keeps its stock.
    let laptop = app
        .put_item(
            client,
            "A001",
            &json!({"name": "Laptop Pro", "category": "electronics"}),
        )
        .await;
    laptop.assert_status(200);
    assert_eq!(laptop.body["stock"], 50);
}

#[actix_web::test]
async fn stock_adjustments_move_stock_and_refuse_to_go_below_zero() {
    let app = spawn_app().await;
    let client = &app.server.client;
    let res = app.adjust(client, "B001", 5).await;
    res.assert_status(200);
    assert_eq!(res.body["stock"], 25);
    app.adjust(client, "B001", -25).await.assert_status(200);
    let refused = app.adjust(client, "B001", -1).await;
    refused.assert_problem(409, "insufficient_stock");
    assert_eq!(refused.body["skus"], json!(["B001"]));
    assert_eq!(refused.body["stock"], 0);
    assert_eq!(app.stock("B001").await, 0);
    app.adjust(client, "Z999", 1)
        .await
        .assert_problem(404, "item_not_found");
}

#[actix_web::test]
async fn history_lists_each_change_newest_first_with_its_actor() {
    let app = spawn_app().await;
    let client = &app.server.client;
    let item = json!({"name": "Lamp", "category": "furniture"});
    app.put_item(client, "D001", &item).await.assert_status(201);
    app.adjust(client, "D001", 7).await.assert_status(200);
    app.adjust(client, "D001", -2).await.assert_status(200);
    app.put_item(
        client,
        "D001",
        &json!({"name": "Lamp 2", "category": "furniture"}),
    )
    .await
    .assert_status(200);

    let history = app.history(client, "D001").await;
    history.assert_status(200);
    assert_eq!(history.body["sku"], "D001");
    assert_eq!(history.body["count"], 4);
    assert_eq!(
        kinds(&history.body),
        ["updated", "stock", "stock", "created"]
    );
    let changes = &history.body["changes"];
    assert_eq!(changes[0]["name"], "Lamp 2");
    assert_eq!(
        (&changes[1]["delta"], &changes[1]["stock_after"]),
        (&json!(-2), &json!(5))
    );
    assert_eq!(changes[2]["reason"], "test adjustment");
    assert_eq!(changes[3]["category"], "furniture");
    for change in changes.as_array().expect("changes") {
        assert_eq!(change["actor"], "anonymous", "auth is off: {change}");
        assert!(
            change["at"].as_str().is_some_and(|at| at.ends_with('Z')),
            "{change}"
        );
    }
    // A refused adjustment leaves no trace.
    app.adjust(client, "D001", -100).await.assert_status(409);
    assert_eq!(app.history(client, "D001").await.body["count"], 4);

    let page = client.get("/items/D001/history?limit=1").await;
    assert_eq!(kinds(&page.body), ["updated"]);
    for bad in ["0", "201", "x"] {
        let res = client
            .get(&format!("/items/D001/history?limit={bad}"))
            .await;
        assert_eq!(res.status, 400, "limit={bad}: {}", res.text);
    }
    // Seeded items start with no history; unknown ones have none to show.
    assert_eq!(app.history(client, "A002").await.body["changes"], json!([]));
    app.history(client, "Z999")
        .await
        .assert_problem(404, "item_not_found");
}

#[actix_web::test]
async fn operators_manage_the_catalogue_and_are_recorded_as_the_actor() {
    let issuer = TestIssuer::start();
    let app = app_trusting(&issuer, false).await;
    let operator = app
        .server
        .client
        .with_bearer(&issuer.token("alice", &[WRITE]));
    let item = json!({"name": "Lamp", "category": "furniture"});
    app.put_item(&operator, "D001", &item)
        .await
        .assert_status(201);
    app.adjust(&operator, "D001", 3).await.assert_status(200);
    let history = app.history(&operator, "D001").await;
    history.assert_status(200);
    let actors: Vec<&Value> = history.body["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| &c["actor"])
        .collect();
    assert_eq!(actors, [&json!("alice"), &json!("alice")]);
}

#[actix_web::test]
async fn customers_without_the_scope_are_forbidden() {
    let issuer = TestIssuer::start();
    let app = app_trusting(&issuer, false).await;
    let customer = app.server.client.with_bearer(&issuer.token("bob", &[]));
    let item = json!({"name": "Lamp", "category": "furniture"});
    app.put_item(&customer, "D001", &item)
        .await
        .assert_problem(403, "forbidden");
    app.adjust(&customer, "A001", -50)
        .await
        .assert_problem(403, "forbidden");
    app.history(&customer, "A001")
        .await
        .assert_problem(403, "forbidden");
    assert_eq!(app.stock("A001").await, 50);
    app.server
        .client
        .get("/items/D001")
        .await
        .assert_status(404);
}

#[actix_web::test]
async fn required_auth_refuses_anonymous_management() {
    let issuer = TestIssuer::start();
    let app = app_trusting(&issuer, true).await;
    let client = &app.server.client;
    let item = json!({"name": "Lamp", "category": "furniture"});
    let refused = app.put_item(client, "D001", &item).await;
    refused.assert_problem(401, "unauthorized");
    assert_eq!(
        refused.header("www-authenticate").as_deref(),
        Some("Bearer")
    );
    app.adjust(client, "A001", 1)
        .await
        .assert_problem(401, "unauthorized");
    app.history(client, "A001")
        .await
        .assert_problem(401, "unauthorized");
    client.get("/items/A001").await.assert_status(200);
}

#[actix_web::test]
async fn concurrent_adjustments_never_take_stock_below_zero() {
    let app = spawn_app().await;
    assert_eq!(app.stock("A001").await, 50);
    let attempts = (0..20).map(|_| {
        let client = app.server.client.clone();
        async move {
            client
                .post_json(
                    "/items/A001/stock",
                    &json!({"delta": -5, "reason": "shrinkage"}),
                )
                .await
                .status
                .as_u16()
        }
    });
    let statuses = join_all(attempts).await;
    let taken = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!((taken, refused), (10, 10), "{statuses:?}");
    assert_eq!(app.stock("A001").await, 0);
    let history = app.history(&app.server.client, "A001").await;
    assert_eq!(history.body["count"], 10);
}

#[actix_web::test]
async fn reservations_work_against_restocked_items_and_adjustments_respect_them() {
    let app = spawn_app().await;
    let client = &app.server.client;
    // B002 ships with no stock.
    app.reserve("r1", &[("B002", 2)])
        .await
        .assert_problem(409, "insufficient_stock");
    app.adjust(client, "B002", 3).await.assert_status(200);
    app.reserve("r1", &[("B002", 2)]).await.assert_status(201);
    assert_eq!(app.stock("B002").await, 1);
    // Two are held by r1: only the one left can be taken away.
    app.adjust(client, "B002", -2)
        .await
        .assert_problem(409, "insufficient_stock");
    app.adjust(client, "B002", -1).await.assert_status(200);
    app.release("r1").await.assert_status(204);
    assert_eq!(app.stock("B002").await, 2);
    // A new item is reservable once stocked.
    let item = json!({"name": "Lamp", "category": "furniture"});
    app.put_item(client, "D001", &item).await.assert_status(201);
    app.adjust(client, "D001", 4).await.assert_status(200);
    app.reserve("r2", &[("D001", 4)]).await.assert_status(201);
    assert_eq!(app.stock("D001").await, 0);
}

#[actix_web::test]
async fn bad_management_requests_are_400_problems() {
    let app = spawn_app().await;
    let client = &app.server.client;
    let long = "x".repeat(101);
    let bad_items = [
        json!({}),
        json!({"name": "Lamp"}),
        json!({"name": "", "category": "furniture"}),
        json!({"name": "  ", "category": "furniture"}),
        json!({"name": long, "category": "furniture"}),
        json!({"name": "La\u{0}mp", "category": "furniture"}),
        json!({"name": "Lamp", "category": "Furniture"}),
        json!({"name": "Lamp", "category": "home office"}),
        json!({"name": "Lamp", "category": ""}),
        json!({"name": 5, "category": "furniture"}),
        json!({"name": "Lamp", "category": "furniture", "stock": 9}),
    ];
    for body in bad_items {
        let res = app.put_item(client, "D001", &body).await;
        assert_eq!(res.status, 400, "{body}: {}", res.text);
        assert!(res.body["code"].is_string(), "{body}: {}", res.text);
    }
    let good = json!({"name": "Lamp", "category": "furniture"});
    client
        .put_json("/items/bad%20sku", &good)
        .await
        .assert_problem(400, "invalid_request");

    let reason = "r".repeat(201);
    let bad_adjustments = [
        json!({"delta": 0, "reason": "x"}),
        json!({"delta": 1_000_001, "reason": "x"}),
        json!({"delta": -1_000_001, "reason": "x"}),
        json!({"delta": 2.5, "reason": "x"}),
        json!({"delta": "5", "reason": "x"}),
        json!({"delta": 5}),
        json!({"delta": 5, "reason": ""}),
        json!({"delta": 5, "reason": reason}),
    ];
    for body in bad_adjustments {
        let res = client.post_json("/items/A001/stock", &body).await;
        assert_eq!(res.status, 400, "{body}: {}", res.text);
        assert!(res.body["code"].is_string(), "{body}: {}", res.text);
    }
    let huge = r#"{"delta": 99999999999999999999999, "reason": "x"}"#;
    let res = client
        .post_raw("/items/A001/stock", "application/json", huge)
        .await;
    assert_eq!(res.status, 400, "{}", res.text);
    client
        .post_raw("/items/A001/stock", "application/json", "{\"delta\":")
        .await
        .assert_problem(400, "malformed_json");
    assert_eq!(app.stock("A001").await, 50);
    client.get("/items/D001").await.assert_status(404);
}

#[actix_web::test]
async fn the_adjustment_metric_counts_exactly_the_adjustments_made() {
    let app = spawn_app().await;
    let client = &app.server.client;
    let series = |text: &str, direction: &str| -> Option<f64> {
        let name = format!("inventory_stock_adjustments_total{{direction=\"{direction}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(name.as_str()))
            .and_then(|v| v.trim().parse().ok())
    };
    let before = app.get("/metrics").await.text;
    assert_eq!(
        (series(&before, "in"), series(&before, "out")),
        (Some(0.0), Some(0.0))
    );
    for delta in [3, 4, -1] {
        app.adjust(client, "C001", delta).await.assert_status(200);
    }
    // Refused and invalid requests change nothing, so count nothing.
    app.adjust(client, "C001", -10_000).await.assert_status(409);
    app.adjust(client, "Z999", 1).await.assert_status(404);
    app.adjust(client, "C001", 0).await.assert_status(400);
    let after = app.get("/metrics").await.text;
    assert_eq!(series(&after, "in"), Some(2.0), "{after}");
    assert_eq!(series(&after, "out"), Some(1.0), "{after}");
}
