//! Order against an inventory one release behind, as during a rolling
//! update: that release has no `POST /reservation-confirmations`, so order
//! confirms each reservation with `POST /reservations/{id}/confirm`, and asks
//! for the batch again only after a while.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use futures::future::join_all;
use shared_http::problem::Problem;

use crate::helpers::{Stack, spawn_stack};

/// What the older inventory answers for the batch confirm.
#[derive(Clone, Copy)]
enum BatchAnswer {
    /// As a release without the route: 404 problem+json `not_found`, the
    /// answer of any unknown route.
    Missing,
    /// 503 `service_unavailable`: the route exists, inventory is failing.
    Failing,
}

/// Calls the older inventory saw, counted by kind.
#[derive(Default)]
struct Seen {
    batch: AtomicUsize,
    single: AtomicUsize,
}

/// An inventory one release behind, as order sees it: a real inventory
/// behind a small server that forwards every request to it, except the
/// batch confirm, which it answers as [`BatchAnswer`] says.
struct OlderInventory {
    url: String,
    seen: Arc<Seen>,
}

struct Upstream {
    base: String,
    seen: Arc<Seen>,
    batch: BatchAnswer,
}

impl OlderInventory {
    fn start(upstream: &str, batch: BatchAnswer) -> Self {
        let seen = Arc::new(Seen::default());
        let upstream = web::Data::new(Upstream {
            base: upstream.to_owned(),
            seen: seen.clone(),
            batch,
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(upstream.clone())
                .app_data(web::Data::new(awc::Client::new()))
                .route("/reservation-confirmations", web::post().to(batch_confirm))
                .default_service(web::to(forward))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("bind");
        let url = format!("http://127.0.0.1:{}", server.addrs()[0].port());
        actix_web::rt::spawn(server.run());
        Self { url, seen }
    }

    fn batch_calls(&self) -> usize {
        self.seen.batch.load(Ordering::SeqCst)
    }

    fn single_confirms(&self) -> usize {
        self.seen.single.load(Ordering::SeqCst)
    }
}

async fn batch_confirm(upstream: web::Data<Upstream>) -> HttpResponse {
    upstream.seen.batch.fetch_add(1, Ordering::SeqCst);
    match upstream.batch {
        BatchAnswer::Missing => Problem::from_status(StatusCode::NOT_FOUND)
            .detail("No resource at POST /reservation-confirmations.")
            .to_response(),
        BatchAnswer::Failing => Problem::from_status(StatusCode::SERVICE_UNAVAILABLE).to_response(),
    }
}

/// Passes the request on as it came and the answer back as it came.
async fn forward(
    req: HttpRequest,
    body: web::Bytes,
    upstream: web::Data<Upstream>,
    client: web::Data<awc::Client>,
) -> HttpResponse {
    if req.path().ends_with("/confirm") {
        upstream.seen.single.fetch_add(1, Ordering::SeqCst);
    }
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut request = client.request(req.method().clone(), format!("{}{target}", upstream.base));
    for (name, value) in req.headers() {
        if name != header::HOST {
            request = request.append_header((name.clone(), value.clone()));
        }
    }
    let mut answer = match request.send_body(body).await {
        Ok(answer) => answer,
        Err(e) => return HttpResponse::BadGateway().body(e.to_string()),
    };
    let bytes = answer.body().await.unwrap_or_default();
    let mut back = HttpResponse::build(answer.status());
    for (name, value) in answer.headers() {
        if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING {
            back.append_header((name.clone(), value.clone()));
        }
    }
    back.body(bytes)
}

fn inventory_url(stack: &Stack) -> String {
    format!(
        "http://127.0.0.1:{}",
        stack.inventory.as_ref().expect("up").port
    )
}

/// Asserts that every answer is a 201 whose reservation inventory now holds
/// for good.
async fn assert_confirmed(stack: &Stack, answers: &[shared_testkit::TestResponse]) {
    for res in answers {
        res.assert_status(201);
        assert_eq!(res.body["status"], "confirmed", "{}", res.body);
        let id = res.body["order_id"].as_str().expect("an order id");
        let reservation = stack
            .inventory_client
            .get(&format!("/reservations/{id}"))
            .await;
        assert_eq!(reservation.body["status"], "confirmed", "{id}");
    }
}

#[actix_web::test]
async fn orders_are_confirmed_one_at_a_time_by_an_inventory_without_the_batch_confirm() {
    let stack = spawn_stack().await;
    let older = OlderInventory::start(&inventory_url(&stack), BatchAnswer::Missing);
    let order = stack.order_replica(older.url.clone()).await;
    let place = |i: usize| {
        let client = order.client.clone();
        async move {
            let body = crate::helpers::order_body(&format!("c{i}"), &[("A001", 2)]);
            client.post_json("/orders", &body).await
        }
    };

    // The first order finds out, and is confirmed on its own.
    let first = place(0).await;
    assert_confirmed(&stack, std::slice::from_ref(&first)).await;
    assert_eq!(older.batch_calls(), 1);
    assert_eq!(older.single_confirms(), 1);

    // The next ones, at once and one by one, go straight to their own confirm.
    let together = join_all((1..9).map(place)).await;
    assert_confirmed(&stack, &together).await;
    let alone = place(9).await;
    assert_confirmed(&stack, std::slice::from_ref(&alone)).await;
    assert_eq!(older.batch_calls(), 1, "the batch confirm was asked once");
    assert_eq!(older.single_confirms(), 10);
    assert_eq!(stack.stock("A001").await, 50 - 10 * 2);
    let single = crate::helpers::metric(&order.client, "order_single_confirms_total").await;
    assert_eq!(single, 10.0);

    // After the period the batch is asked again (inventory may have been
    // upgraded); this one still is not, and the order is confirmed anyway.
    stack
        .clock
        .advance(order::clients::RECHECK_AFTER + Duration::from_secs(1));
    let later = place(10).await;
    assert_confirmed(&stack, std::slice::from_ref(&later)).await;
    assert_eq!(older.batch_calls(), 2, "asked again after the period");
    assert_eq!(older.single_confirms(), 11);
    assert_eq!(stack.stock("A001").await, 50 - 11 * 2);
}

#[actix_web::test]
async fn a_failing_batch_confirm_is_not_taken_for_a_missing_one() {
    let stack = spawn_stack().await;
    let older = OlderInventory::start(&inventory_url(&stack), BatchAnswer::Failing);
    let order = stack.order_replica(older.url.clone()).await;
    let body = crate::helpers::order_body("c1", &[("A001", 2)]);
    let res = order.client.post_json("/orders", &body).await;
    res.assert_status(503);
    assert_eq!(older.single_confirms(), 0, "no confirm one at a time");
    assert!(older.batch_calls() >= 1);
    assert_eq!(stack.stock("A001").await, 50, "the held stock went back");
}

#[actix_web::test]
async fn orders_are_confirmed_while_inventory_replicas_run_both_releases() {
    let stack = spawn_stack().await;
    let older = OlderInventory::start(&inventory_url(&stack), BatchAnswer::Missing);
    let newer = stack.inventory_replica().await;
    let both = format!("{},http://127.0.0.1:{}", older.url, newer.port);
    let order = stack.order_replica(both).await;
    let placed = join_all((0..12).map(|i| {
        let client = order.client.clone();
        async move {
            let body = crate::helpers::order_body(&format!("c{i}"), &[("A002", 3)]);
            client.post_json("/orders", &body).await
        }
    }))
    .await;
    assert_confirmed(&stack, &placed).await;
    for i in 12..16 {
        let body = crate::helpers::order_body(&format!("c{i}"), &[("A002", 3)]);
        let res = order.client.post_json("/orders", &body).await;
        assert_confirmed(&stack, std::slice::from_ref(&res)).await;
    }
    assert_eq!(stack.stock("A002").await, 200 - 16 * 3);
}
