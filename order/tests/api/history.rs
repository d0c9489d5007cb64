//! `GET /orders?customer_id=..`: a customer's history, page by page with
//! `cursor`, filtered by `status`, rejected and failed attempts included.

use std::collections::HashSet;
use std::time::Instant;

use futures::future::join_all;
use serde_json::Value;
use shared_testkit::TestResponse;

use crate::helpers::{Stack, spawn_stack};

/// How many orders the paging test places at once: enough to keep the debug
/// build's saga busy without queueing minutes behind SQLite's one writer.
const CONCURRENCY: usize = 10;

async fn list(stack: &Stack, query: &str) -> TestResponse {
    stack.order.client.get(&format!("/orders?{query}")).await
}

fn ids(page: &Value) -> Vec<String> {
    page["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| o["order_id"].as_str().expect("order_id").to_owned())
        .collect()
}

fn statuses(page: &Value) -> HashSet<String> {
    page["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| o["status"].as_str().expect("status").to_owned())
        .collect()
}

/// `created_at` with the fraction always 9 digits, so that text order is time
/// order (`…:00Z` and `…:00.5Z` both come back from RFC 3339 formatting).
fn instant(created_at: &str) -> String {
    let bare = created_at.strip_suffix('Z').expect("UTC");
    let (seconds, fraction) = bare.split_once('.').unwrap_or((bare, ""));
    format!("{seconds}.{fraction:0<9}")
}

/// (created_at, order_id) of each order: the key the history is sorted on.
fn keys(page: &Value) -> Vec<(String, String)> {
    page["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| {
            let at = instant(o["created_at"].as_str().expect("created_at"));
            (at, o["order_id"].as_str().expect("order_id").to_owned())
        })
        .collect()
}

/// Places `n` orders of one coffee each for `customer`, `CONCURRENCY` at a time.
async fn place_many(stack: &Stack, customer: &str, n: usize) -> HashSet<String> {
    let mut placed = HashSet::new();
    let batches: Vec<usize> = (0..n)
        .step_by(CONCURRENCY)
        .map(|start| CONCURRENCY.min(n - start))
        .collect();
    for size in batches {
        let answers = join_all((0..size).map(|_| stack.place(customer, &[("C001", 1)]))).await;
        for res in answers {
            res.assert_status(201);
            placed.insert(res.body["order_id"].as_str().expect("id").to_owned());
        }
    }
    assert_eq!(placed.len(), n);
    placed
}

/// Follows `next_cursor` from `cursor` (from the first page when `None`) to
/// the last page; the pages' bodies.
async fn pages_from(stack: &Stack, query: &str, mut cursor: Option<String>) -> Vec<Value> {
    let mut pages = Vec::new();
    loop {
        let url = match &cursor {
            None => query.to_owned(),
            Some(c) => format!("{query}&cursor={c}"),
        };
        let res = list(stack, &url).await;
        res.assert_status(200);
        cursor = res.body["next_cursor"].as_str().map(str::to_owned);
        pages.push(res.body.clone());
        if cursor.is_none() {
            return pages;
        }
        assert!(pages.len() < 1_000, "paging never ends");
    }
}

#[actix_web::test]
async fn paging_with_cursor_shows_each_of_250_orders_exactly_once_newest_first() {
    let stack = spawn_stack().await;
    let started = Instant::now();
    let placed = place_many(&stack, "pager", 250).await;
    eprintln!("placed 250 orders over HTTP in {:?}", started.elapsed());
    stack
        .place("someone-else", &[("C001", 1)])
        .await
        .assert_status(201);

    let first = list(&stack, "customer_id=pager&limit=40").await;
    first.assert_status(200);
    // An order placed while the customer pages is newer than the first page:
    // it must not show up on a later page, nor push another order off one.
    let newcomer = stack.place("pager", &[("C001", 1)]).await;
    newcomer.assert_status(201);
    let newcomer = newcomer.body["order_id"].as_str().expect("id").to_owned();

    let mut pages = vec![first.body.clone()];
    let cursor = first.body["next_cursor"].as_str().expect("more pages");
    pages.extend(
        pages_from(
            &stack,
            "customer_id=pager&limit=40",
            Some(cursor.to_owned()),
        )
        .await,
    );

    let sizes: Vec<u64> = pages
        .iter()
        .map(|p| p["count"].as_u64().expect("count"))
        .collect();
    assert_eq!(sizes, [40, 40, 40, 40, 40, 40, 10]);
    for page in &pages {
        assert_eq!(
            page["count"],
            page["orders"].as_array().expect("orders").len()
        );
    }
    let last = pages.last().expect("pages");
    assert!(
        last["next_cursor"].is_null(),
        "the last page says so: {last}"
    );

    let seen: Vec<String> = pages.iter().flat_map(ids).collect();
    let distinct: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), 250, "each order once");
    assert_eq!(distinct, placed, "exactly the customer's orders");
    assert!(!distinct.contains(&newcomer));

    let order: Vec<(String, String)> = pages.iter().flat_map(keys).collect();
    assert!(
        order.windows(2).all(|w| w[0] > w[1]),
        "newest first by (created_at, order_id), across pages"
    );

    // From the top again, the newcomer leads.
    let top = list(&stack, "customer_id=pager&limit=1").await;
    assert_eq!(ids(&top.body), [newcomer]);
    assert!(top.body["next_cursor"].is_string());
}

#[actix_web::test]
async fn rejected_and_failed_attempts_are_listed_and_status_filters_them() {
    let mut stack = spawn_stack().await;
    let c = "filtered";
    let mut confirmed = Vec::new();
    for _ in 0..3 {
        let res = stack.place(c, &[("C001", 1)]).await;
        res.assert_status(201);
        confirmed.push(res.body["order_id"].as_str().expect("id").to_owned());
    }
    // B002 has no stock and Z999 is not sold: rejected, but recorded.
    stack
        .place(c, &[("B002", 1)])
        .await
        .assert_problem(409, "insufficient_stock");
    stack
        .place(c, &[("B002", 2)])
        .await
        .assert_problem(409, "insufficient_stock");
    stack
        .place(c, &[("Z999", 1)])
        .await
        .assert_problem(422, "unknown_sku");
    // Inventory down: the attempt fails, and is recorded too.
    stack.stop_inventory().await;
    stack
        .place(c, &[("C001", 1)])
        .await
        .assert_problem(503, "inventory_unavailable");
    stack.start_inventory().await;
    // One confirmed order is cancelled.
    let cancel = format!("/orders/{}/cancel", confirmed[0]);
    stack
        .order
        .client
        .post_json(&cancel, &serde_json::json!({}))
        .await
        .assert_status(200);

    let all = list(&stack, &format!("customer_id={c}")).await;
    all.assert_status(200);
    assert_eq!(
        all.body["count"], 7,
        "every attempt is history: {}",
        all.body
    );
    assert!(all.body["next_cursor"].is_null());
    let rejected: Vec<&Value> = all.body["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .filter(|o| o["status"] == "rejected")
        .collect();
    assert_eq!(rejected.len(), 3);
    assert!(rejected.iter().all(|o| o["failure_reason"].is_string()));

    let only_confirmed = list(&stack, &format!("customer_id={c}&status=confirmed")).await;
    only_confirmed.assert_status(200);
    assert_eq!(only_confirmed.body["count"], 2);
    assert_eq!(
        statuses(&only_confirmed.body),
        HashSet::from(["confirmed".into()])
    );
    assert_eq!(
        ids(&only_confirmed.body),
        [confirmed[2].clone(), confirmed[1].clone()],
        "newest first"
    );

    let attempts = list(&stack, &format!("customer_id={c}&status=rejected,failed")).await;
    attempts.assert_status(200);
    assert_eq!(attempts.body["count"], 4);
    assert_eq!(
        statuses(&attempts.body),
        HashSet::from(["rejected".into(), "failed".into()])
    );

    let went_through = list(
        &stack,
        &format!("customer_id={c}&status=pending,confirmed,pending_pricing,cancelled"),
    )
    .await;
    assert_eq!(went_through.body["count"], 3);
    let cancelled = list(&stack, &format!("customer_id={c}&status=cancelled")).await;
    assert_eq!(ids(&cancelled.body), [confirmed[0].clone()]);
    let none = list(&stack, &format!("customer_id={c}&status=pending_pricing")).await;
    none.assert_status(200);
    assert_eq!(none.body["count"], 0);
    assert!(none.body["next_cursor"].is_null());

    // The filter and the cursor go together: the attempts one at a time.
    let query = format!("customer_id={c}&status=rejected,failed&limit=1");
    let pages = pages_from(&stack, &query, None).await;
    let paged: Vec<String> = pages.iter().flat_map(ids).collect();
    assert_eq!(paged, ids(&attempts.body));
}

#[actix_web::test]
async fn the_contract_listing_still_answers_orders_and_count() {
    let stack = spawn_stack().await;
    stack.place("c1", &[("A002", 1)]).await.assert_status(201);
    let res = list(&stack, "customer_id=c1").await;
    res.assert_status(200);
    assert_eq!(res.body["count"], 1);
    assert_eq!(res.body["orders"].as_array().expect("orders").len(), 1);
    assert!(res.body["next_cursor"].is_null(), "one page only");

    let nobody = list(&stack, "customer_id=nobody").await;
    nobody.assert_status(200);
    assert_eq!(nobody.body["count"], 0);
    assert!(nobody.body["next_cursor"].is_null());
}

#[actix_web::test]
async fn limit_is_still_brought_into_1_to_200() {
    let stack = spawn_stack().await;
    place_many(&stack, "c1", 3).await;
    let cases = [("0", 1), ("1", 1), ("2", 2), ("200", 3), ("100000", 3)];
    for (limit, count) in cases {
        let res = list(&stack, &format!("customer_id=c1&limit={limit}")).await;
        res.assert_status(200);
        assert_eq!(res.body["count"], count, "limit={limit}");
        assert_eq!(
            res.body["next_cursor"].is_string(),
            count < 3,
            "limit={limit}"
        );
    }
    list(&stack, "customer_id=c1&limit=-1")
        .await
        .assert_problem(400, "invalid_query");
}

#[actix_web::test]
async fn a_bad_status_or_cursor_is_a_400_naming_it() {
    let stack = spawn_stack().await;
    place_many(&stack, "c1", 2).await;
    let page = list(&stack, "customer_id=c1&limit=1").await;
    let good = page.body["next_cursor"]
        .as_str()
        .expect("a cursor")
        .to_owned();
    assert_eq!(good.len(), 34);
    // Version 2 instead of 1: the second character carries the version's low bits.
    let version_2 = format!("Ag{}", &good[2..]);
    assert_eq!(&good[..2], "AQ");

    let cases: Vec<(String, &str)> = vec![
        ("status=shipped".into(), "\"shipped\""),
        ("status=confirmed,shipped".into(), "\"shipped\""),
        ("status=Confirmed".into(), "\"Confirmed\""),
        ("status=confirmed,".into(), "not an order status"),
        ("status=".into(), "not an order status"),
        ("status=confirmed%2C%20failed".into(), "\" failed\""),
        ("cursor=".into(), "cursor"),
        ("cursor=not-a-cursor".into(), "cursor"),
        (format!("cursor={}", &good[..33]), "cursor"),
        (format!("cursor={good}A"), "cursor"),
        (format!("cursor={good}%3D"), "cursor"),
        (format!("cursor={version_2}"), "cursor"),
        (format!("cursor=%2B{}", &good[1..]), "cursor"),
        (format!("cursor={}", "A".repeat(5_000)), "cursor"),
        ("cursor=%00%01%02".into(), "cursor"),
    ];
    for (query, named) in cases {
        let res = list(&stack, &format!("customer_id=c1&{query}")).await;
        res.assert_problem(400, "invalid_request");
        let detail = res.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(named), "{query}: {detail}");
    }

    // The same cursor, untouched, still works.
    let next = list(&stack, &format!("customer_id=c1&limit=1&cursor={good}")).await;
    next.assert_status(200);
    assert_eq!(next.body["count"], 1);
    assert!(next.body["next_cursor"].is_null());
}
