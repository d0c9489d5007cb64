use std::time::Duration;

use serde_json::json;

use shared_testkit::{Spawned, spawn};

use crate::helpers::{TestApp, spawn_app, spawn_app_with, test_config};

#[actix_web::test]
async fn list_items_returns_the_seeded_catalogue() {
    let app = spawn_app().await;
    let res = app.get("/items").await;
    res.assert_status(200);
    let items = res.body["items"].as_array().expect("items");
    assert!(items.len() >= 12);
    assert_eq!(res.body["count"], items.len());
    let laptop = items
        .iter()
        .find(|i| i["sku"] == "A001")
        .expect("A001 listed");
    assert_eq!(laptop["name"], "Laptop");
    assert_eq!(laptop["category"], "electronics");
    assert_eq!(laptop["stock"], 50);
}

#[actix_web::test]
async fn list_items_filters_by_category_and_skus() {
    let app = spawn_app().await;
    let res = app.get("/items?category=furniture").await;
    let items = res.body["items"].as_array().expect("items");
    assert!(items.len() >= 2);
    assert!(items.iter().all(|i| i["category"] == "furniture"));

    let res = app.get("/items?skus=A001,B001,Z999").await;
    let skus: Vec<&str> = res.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["sku"].as_str().expect("sku"))
        .collect();
    assert_eq!(skus, ["A001", "B001"]);

    let res = app.get("/items?category=furniture&skus=A001,B001").await;
    assert_eq!(res.body["count"], 1);

    app.get("/items?skus=bad%20sku")
        .await
        .assert_problem(400, "invalid_request");
}

#[actix_web::test]
async fn get_item_returns_the_item_or_404() {
    let app = spawn_app().await;
    let res = app.get("/items/B002").await;
    res.assert_status(200);
    assert_eq!(res.body["name"], "Standing Desk");
    assert_eq!(res.body["stock"], 0);
    app.get("/items/Z999")
        .await
        .assert_problem(404, "item_not_found");
}

#[actix_web::test]
async fn categories_summarise_the_catalogue() {
    let app = spawn_app().await;
    let res = app.get("/categories").await;
    res.assert_status(200);
    let names: Vec<&str> = res.body["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["electronics", "furniture", "grocery"]);
}

#[actix_web::test]
async fn readiness_checks_the_database() {
    let app = spawn_app().await;
    let res = app.get("/health/ready").await;
    res.assert_status(200);
    assert_eq!(res.body["checks"]["database"]["status"], "up");
    let res = app.get("/health").await;
    assert_eq!(res.body["service"], "inventory");
    assert_eq!(res.body["checks"]["database"]["required"], true);
}

/// A second inventory on `app`'s database.
async fn replica_of(app: &TestApp) -> Spawned {
    spawn(
        inventory::startup::build(test_config(&app.db))
            .await
            .expect("a second replica starts"),
    )
}

/// Reserves `quantity` of `sku` through `replica`.
async fn reserve_via(replica: &Spawned, id: &str, sku: &str, quantity: u64) {
    let lines = json!([{"sku": sku, "quantity": quantity}]);
    replica
        .client
        .post_json(
            "/reservations",
            &json!({"reservation_id": id, "lines": lines}),
        )
        .await
        .assert_status(201);
}

/// `GET /items/{sku}` answers from memory for `ITEM_CACHE_TTL_MS`: a change
/// made through another replica shows once that has passed, one made
/// through this replica at once.
#[actix_web::test]
async fn an_item_is_cached_until_this_replica_changes_it() {
    let a = spawn_app_with(|c| c.item_cache_ttl = Duration::from_secs(60)).await;
    let b = replica_of(&a).await;
    assert_eq!(a.stock("A001").await, 50);
    reserve_via(&b, "via-b", "A001", 2).await;
    assert_eq!(a.stock("A001").await, 50, "served from a's memory");
    let listed = a.get("/items?skus=A001").await;
    assert_eq!(
        listed.body["items"][0]["stock"], 48,
        "lists read the database"
    );

    a.reserve("via-a", &[("A001", 1)]).await.assert_status(201);
    assert_eq!(a.stock("A001").await, 47, "a's own change is seen at once");
    a.release("via-a").await.assert_status(204);
    assert_eq!(a.stock("A001").await, 48);

    let uncached = spawn_app_with(|c| c.item_cache_ttl = Duration::ZERO).await;
    let other = replica_of(&uncached).await;
    assert_eq!(uncached.stock("A002").await, 200);
    reserve_via(&other, "r", "A002", 3).await;
    assert_eq!(uncached.stock("A002").await, 197, "with the cache off");
}
