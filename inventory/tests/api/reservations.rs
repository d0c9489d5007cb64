use std::time::Duration;

use actix_web::http::Method;
use futures::future::join_all;
use serde_json::json;
use shared_testkit::eventually;

use crate::helpers::{spawn_app, spawn_app_with};

#[actix_web::test]
async fn reserve_takes_stock_and_returns_201() {
    let app = spawn_app().await;
    let res = app.reserve("r1", &[("A001", 2), ("C001", 5)]).await;
    res.assert_status(201);
    assert_eq!(res.body["reservation_id"], "r1");
    assert_eq!(res.body["status"], "reserved");
    assert!(res.body["expires_at"].is_string());
    assert_eq!(
        res.body["items"],
        json!([
            {"sku": "A001", "name": "Laptop", "category": "electronics", "quantity": 2},
            {"sku": "C001", "name": "Coffee Beans", "category": "grocery", "quantity": 5}
        ])
    );
    assert_eq!(app.stock("A001").await, 48);
    assert_eq!(app.stock("C001").await, 495);
}

#[actix_web::test]
async fn reserve_returns_409_when_stock_is_short_and_reserves_nothing() {
    let app = spawn_app().await;
    let res = app.reserve("r1", &[("A001", 1), ("B002", 1)]).await;
    res.assert_problem(409, "insufficient_stock");
    assert_eq!(res.body["skus"], json!(["B002"]));
    assert_eq!(app.stock("A001").await, 50, "all lines or none");
    app.get("/reservations/r1")
        .await
        .assert_problem(404, "reservation_not_found");
    // The id is free to use again once stock allows.
    app.reserve("r1", &[("A001", 1)]).await.assert_status(201);
}

#[actix_web::test]
async fn reserve_returns_422_for_unknown_skus() {
    let app = spawn_app().await;
    let res = app.reserve("r1", &[("A001", 1), ("Z999", 1)]).await;
    res.assert_problem(422, "unknown_sku");
    assert_eq!(res.body["skus"], json!(["Z999"]));
    assert_eq!(app.stock("A001").await, 50);
}

#[actix_web::test]
async fn repeating_a_reservation_id_reserves_nothing_twice() {
    let app = spawn_app().await;
    app.reserve("r1", &[("A001", 3)]).await.assert_status(201);
    let again = app.reserve("r1", &[("A001", 3)]).await;
    again.assert_status(200);
    assert_eq!(again.body["reservation_id"], "r1");
    assert_eq!(again.body["items"][0]["quantity"], 3);
    assert_eq!(app.stock("A001").await, 47);
}

#[actix_web::test]
async fn confirm_keeps_the_stock_and_is_idempotent() {
    let app = spawn_app().await;
    app.reserve("r1", &[("B001", 2)]).await.assert_status(201);
    let res = app.confirm("r1").await;
    res.assert_status(200);
    assert_eq!(res.body["status"], "confirmed");
    assert!(res.body["expires_at"].is_null());
    app.confirm("r1").await.assert_status(200);
    assert_eq!(app.stock("B001").await, 18);
    assert_eq!(
        app.get("/reservations/r1").await.body["status"],
        "confirmed"
    );
    app.confirm("nope")
        .await
        .assert_problem(404, "reservation_not_found");
}

#[actix_web::test]
async fn many_reservations_are_confirmed_in_one_call_each_answered_for_itself() {
    let app = spawn_app_with(|c| c.reservation_ttl = Duration::from_millis(300)).await;
    app.reserve("kept", &[("B001", 2)]).await.assert_status(201);
    app.reserve("before", &[("B001", 1)])
        .await
        .assert_status(201);
    app.confirm("before").await.assert_status(200);
    app.reserve("gone", &[("B001", 3)]).await.assert_status(201);
    app.release("gone").await.assert_status(204);
    app.reserve("late", &[("A001", 4)]).await.assert_status(201);
    std::thread::sleep(Duration::from_millis(350)); // "kept" and "late" expire
    app.reserve("fresh", &[("A001", 1)])
        .await
        .assert_status(201);

    let asked = ["fresh", "nope", "before", "late", "gone", "fresh"];
    let res = app.confirm_all(&asked).await;
    res.assert_status(200);
    let by_id: Vec<(&str, &str)> = res.body["reservations"]
        .as_array()
        .expect("reservations")
        .iter()
        .map(|r| {
            let status = r["status"].as_str().expect("status");
            (r["reservation_id"].as_str().expect("id"), status)
        })
        .collect();
    assert_eq!(
        by_id,
        [
            ("fresh", "confirmed"),
            ("before", "confirmed"),
            ("late", "expired"),
            ("gone", "released"),
        ],
        "each found once, in the order asked: {}",
        res.body
    );
    assert_eq!(res.body["not_found"], json!(["nope"]));
    assert!(res.body["reservations"][0]["expires_at"].is_null());
    assert_eq!(
        app.get("/reservations/fresh").await.body["status"],
        "confirmed"
    );
    // Only the confirmed reservations still hold stock, once the sweeper's
    // next round has given back "kept"'s (nothing reads it: the sleep above
    // also held the sweeper, which shares the test's thread).
    assert_eq!(app.stock("A001").await, 49);
    eventually(
        "the sweeper to expire kept",
        Duration::from_secs(5),
        async || app.stock("B001").await == 19,
    )
    .await;
    app.confirm("kept")
        .await
        .assert_problem(409, "reservation_expired");

    let metrics = app.get("/metrics").await.text;
    for line in [
        r#"reservations_total{outcome="confirmed"} 3"#,
        r#"reservations_total{outcome="too_late"} 3"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
}

#[actix_web::test]
async fn confirming_none_more_than_a_hundred_or_a_bad_id_is_400() {
    let app = spawn_app().await;
    app.confirm_all(&[])
        .await
        .assert_problem(400, "invalid_request");
    app.reserve("r1", &[("A001", 1)]).await.assert_status(201);
    app.confirm_all(&["r1", "not an id!"])
        .await
        .assert_problem(400, "invalid_request");
    assert_eq!(
        app.get("/reservations/r1").await.body["status"],
        "reserved",
        "nothing confirmed"
    );
    let ids: Vec<String> = (0..101).map(|i| format!("x{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.confirm_all(&ids)
        .await
        .assert_problem(400, "invalid_request");
    let res = app.confirm_all(&ids[..100]).await;
    res.assert_status(200);
    assert_eq!(res.body["not_found"].as_array().map(Vec::len), Some(100));
    app.server
        .client
        .post_json(
            "/reservation-confirmations",
            &json!({"reservation_ids": "r1"}),
        )
        .await
        .assert_problem(400, "invalid_request");
}

#[actix_web::test]
async fn release_returns_the_stock_of_reserved_and_confirmed_reservations() {
    let app = spawn_app().await;
    app.reserve("r1", &[("B001", 2)]).await.assert_status(201);
    app.reserve("r2", &[("B001", 3)]).await.assert_status(201);
    app.confirm("r2").await.assert_status(200);
    assert_eq!(app.stock("B001").await, 15);

    app.release("r1").await.assert_status(204);
    app.release("r2").await.assert_status(204);
    assert_eq!(app.stock("B001").await, 20);
    app.release("r1").await.assert_status(204);
    assert_eq!(
        app.stock("B001").await,
        20,
        "releasing twice gives back once"
    );
    assert_eq!(app.get("/reservations/r2").await.body["status"], "released");
    app.confirm("r1")
        .await
        .assert_problem(409, "reservation_expired");
}

#[actix_web::test]
async fn a_reservation_released_before_it_arrives_holds_nothing() {
    let app = spawn_app().await;
    // The caller gave up and released; its reservation request then arrives late.
    app.release("late").await.assert_status(204);
    let res = app.reserve("late", &[("A001", 1)]).await;
    res.assert_status(200);
    assert_eq!(res.body["status"], "released");
    assert_eq!(app.stock("A001").await, 50);
}

#[actix_web::test]
async fn an_unconfirmed_reservation_expires_and_cannot_be_confirmed() {
    let app = spawn_app_with(|c| c.reservation_ttl = Duration::from_millis(1)).await;
    app.reserve("r1", &[("A001", 5)]).await.assert_status(201);
    std::thread::sleep(Duration::from_millis(5)); // let the 1 ms TTL pass
    let res = app.confirm("r1").await;
    res.assert_problem(409, "reservation_expired");
    assert_eq!(res.body["reservation_status"], "expired");
    assert_eq!(app.stock("A001").await, 50);
    assert_eq!(app.get("/reservations/r1").await.body["status"], "expired");
}

#[actix_web::test]
async fn the_expiry_task_returns_stock_without_any_request_touching_the_reservation() {
    let app = spawn_app_with(|c| c.reservation_ttl = Duration::from_millis(100)).await;
    app.reserve("r1", &[("A001", 5)]).await.assert_status(201);
    assert_eq!(app.stock("A001").await, 45);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while app.stock("A001").await != 50 {
        assert!(std::time::Instant::now() < deadline, "stock never returned");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn invalid_reservation_requests_are_400() {
    let app = spawn_app().await;
    let cases = [
        json!({"reservation_id": "r1", "lines": []}),
        json!({"reservation_id": "", "lines": [{"sku": "A001", "quantity": 1}]}),
        json!({"reservation_id": "r1", "lines": [{"sku": "A001", "quantity": 0}]}),
        json!({"reservation_id": "r1", "lines": [{"sku": "A001", "quantity": -1}]}),
        json!({"reservation_id": "r1", "lines": [{"sku": "A001"}]}),
        json!({"lines": [{"sku": "A001", "quantity": 1}]}),
    ];
    for body in cases {
        let res = app.server.client.post_json("/reservations", &body).await;
        assert_eq!(res.status, 400, "{body}: {}", res.text);
    }
    assert_eq!(app.stock("A001").await, 50);
}

#[actix_web::test]
async fn reservation_endpoints_need_the_service_token_when_one_is_set() {
    let app = spawn_app_with(|c| c.service_token = Some("s3cret".into())).await;
    app.reserve("r1", &[("A001", 1)])
        .await
        .assert_problem(401, "unauthorized");
    let body = json!({"reservation_id": "r1", "lines": [{"sku": "A001", "quantity": 1}]});
    let res = app
        .server
        .client
        .send(
            Method::POST,
            "/reservations",
            &[
                ("content-type", "application/json"),
                ("authorization", "Bearer s3cret"),
            ],
            Some(body.to_string().into_bytes()),
        )
        .await;
    res.assert_status(201);
    // Catalogue reads stay open.
    app.get("/items/A001").await.assert_status(200);
}

#[actix_web::test]
async fn concurrent_reservations_never_oversell() {
    let app = spawn_app().await;
    let attempts = (0..100).map(|i| {
        let app = &app;
        async move {
            app.reserve(&format!("r{i}"), &[("B001", 1)])
                .await
                .status
                .as_u16()
        }
    });
    let statuses = join_all(attempts).await;
    let reserved = statuses.iter().filter(|s| **s == 201).count();
    let refused = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!((reserved, refused), (20, 80), "{statuses:?}");
    assert_eq!(app.stock("B001").await, 0);
}

#[actix_web::test]
async fn metrics_count_reservations_by_outcome_and_expiries() {
    let app = spawn_app_with(|c| c.reservation_ttl = Duration::from_millis(50)).await;
    app.reserve("r1", &[("A001", 1)]).await.assert_status(201);
    app.reserve("r1", &[("A001", 1)]).await.assert_status(200);
    app.reserve("r2", &[("B002", 1)]).await.assert_status(409);
    app.reserve("r3", &[("Z999", 1)]).await.assert_status(422);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = app.get("/metrics").await.text;
        if text.contains("reservations_expired_total 1") {
            for line in [
                r#"reservations_total{outcome="reserved"} 1"#,
                r#"reservations_total{outcome="replayed"} 1"#,
                r#"reservations_total{outcome="insufficient_stock"} 1"#,
                r#"reservations_total{outcome="unknown_sku"} 1"#,
                r#"reservations_total{outcome="confirmed"} 0"#,
            ] {
                assert!(text.contains(line), "{line} missing from\n{text}");
            }
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no expiry counted:\n{text}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}
