//! The order service under access control: customers see only their own
//! orders, `orders:admin` sees all, and order gets its own client credentials
//! token for inventory's reservation routes (real inventory, pricing and a
//! test OpenID provider; a small token endpoint on a port-0 server).

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::http::{Method, header};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use shared_auth::AuthConfig;
use shared_auth::ClientCredentials;
use shared_testkit::issuer::TestIssuer;
use shared_testkit::nats::NatsServer;
use shared_testkit::{TestClient, TestResponse, captured_logs};

use crate::helpers::{Stack, order_body, spawn_stack_with};

const ADMIN: &str = "orders:admin";
const RESERVE: &str = "inventory:reserve";
/// `Basic base64("order:s3cret")`, written out so that the endpoint does not
/// share the encoding code it checks.
const ORDER_BASIC: &str = "Basic b3JkZXI6czNjcmV0";

/// An order stack whose order service trusts `issuer` (`required` or not).
async fn stack_trusting(issuer: &TestIssuer, required: bool) -> Stack {
    let auth = issuer.auth_config(required);
    spawn_stack_with(move |c| c.order.server.auth = auth).await
}

async fn place(client: &TestClient, body: &Value) -> TestResponse {
    client.post_json("/orders", body).await
}

fn items_only() -> Value {
    json!({"items": [{"sku": "A001", "quantity": 2}]})
}

/// A 404 body with its order id and request id taken out, to compare the
/// answer for someone else's order with the one for an unknown id.
fn not_found_shape(res: &TestResponse, id: &str) -> Value {
    res.assert_problem(404, "order_not_found");
    let mut body = res.body.clone();
    if let Some(members) = body.as_object_mut() {
        members.remove("request_id");
        members.remove("instance");
    }
    serde_json::from_str(&body.to_string().replace(id, "<id>")).expect("JSON")
}

#[actix_web::test]
async fn customers_place_read_list_and_cancel_only_their_own_orders() {
    let issuer = TestIssuer::start();
    let stack = stack_trusting(&issuer, true).await;
    let client = &stack.order.client;
    let alice = client.with_bearer(&issuer.token("alice", &[]));
    let bob = client.with_bearer(&issuer.token("bob", &[]));
    let admin = client.with_bearer(&issuer.token("ops", &[ADMIN]));

    // Placed for the token's subject; customer_id may be left out or repeated.
    let placed = place(&alice, &items_only()).await;
    placed.assert_status(201);
    assert_eq!(placed.body["customer_id"], "alice");
    let id = placed.body["order_id"].as_str().expect("an id").to_owned();
    place(&alice, &order_body("alice", &[("B001", 1)]))
        .await
        .assert_status(201);
    let mismatch = place(&alice, &order_body("bob", &[("A001", 1)])).await;
    mismatch.assert_problem(403, "customer_mismatch");
    assert_eq!(
        stack.stock("A001").await,
        48,
        "the refused order held nothing"
    );

    alice.get(&format!("/orders/{id}")).await.assert_status(200);
    let own = alice.get("/orders").await;
    own.assert_status(200);
    assert_eq!(own.body["count"], 2);
    let own = alice.get("/orders?customer_id=alice").await;
    assert_eq!(own.body["count"], 2);

    // Bob: alice's order is answered like one that does not exist.
    let unknown = "0193a4a4-7f3c-7c1e-9d2a-5b1f3e2d4c6b";
    let as_unknown = not_found_shape(&bob.get(&format!("/orders/{unknown}")).await, unknown);
    let as_bob = not_found_shape(&bob.get(&format!("/orders/{id}")).await, &id);
    assert_eq!(as_bob, as_unknown);
    let cancel = |who: &TestClient, id: &str| {
        let (who, path) = (who.clone(), format!("/orders/{id}/cancel"));
        async move { who.post_json(&path, &json!({})).await }
    };
    let cancelled_unknown = not_found_shape(&cancel(&bob, unknown).await, unknown);
    let cancelled_by_bob = not_found_shape(&cancel(&bob, &id).await, &id);
    assert_eq!(cancelled_by_bob, cancelled_unknown);
    assert_eq!(stack.stock("A001").await, 48, "bob released nothing");
    let listed = bob.get("/orders?customer_id=alice").await;
    listed.assert_status(200);
    assert_eq!(listed.body["count"], 0);
    assert_eq!(listed.body["orders"], json!([]));
    assert_eq!(bob.get("/orders").await.body["count"], 0);

    // orders:admin reads and lists anyone's.
    admin.get(&format!("/orders/{id}")).await.assert_status(200);
    assert_eq!(
        admin.get("/orders?customer_id=alice").await.body["count"],
        2
    );

    // Alice cancels hers.
    let cancelled = cancel(&alice, &id).await;
    cancelled.assert_status(200);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(stack.stock("A001").await, 50);
}

#[actix_web::test]
async fn required_auth_refuses_anonymous_callers() {
    let issuer = TestIssuer::start();
    let stack = stack_trusting(&issuer, true).await;
    let client = &stack.order.client;
    let placed = stack.place("alice", &[("A001", 1)]).await;
    placed.assert_problem(401, "unauthorized");
    assert_eq!(placed.header("www-authenticate").as_deref(), Some("Bearer"));
    // Refused before the body is read: a bad body gets 401 too.
    client
        .post_raw("/orders", "application/json", b"{".to_vec())
        .await
        .assert_problem(401, "unauthorized");
    let unknown = "0193a4a4-7f3c-7c1e-9d2a-5b1f3e2d4c6b";
    for path in [
        format!("/orders/{unknown}"),
        "/orders?customer_id=alice".to_owned(),
    ] {
        client.get(&path).await.assert_problem(401, "unauthorized");
    }
    client
        .post_json(&format!("/orders/{unknown}/cancel"), &json!({}))
        .await
        .assert_problem(401, "unauthorized");
    client.get("/health").await.assert_status(200);
    assert_eq!(stack.stock("A001").await, 50);
}

#[actix_web::test]
async fn optional_auth_serves_anonymous_customers_as_before_but_not_others_orders_nor_admin_routes()
{
    let issuer = TestIssuer::start();
    // Events on: without them the admin routes do not exist (404).
    let nats = NatsServer::start().await;
    let stack = spawn_stack_with({
        let (events, auth) = (nats.events_config(), issuer.auth_config(false));
        move |c| {
            c.order.events = events;
            c.order.server.auth = auth;
        }
    })
    .await;
    let client = &stack.order.client;
    let placed = stack.place("alice", &[("A001", 1)]).await;
    placed.assert_status(201);
    let id = placed.body["order_id"].as_str().expect("an id");
    client
        .get(&format!("/orders/{id}"))
        .await
        .assert_status(200);
    assert_eq!(
        client.get("/orders?customer_id=alice").await.body["count"],
        1
    );
    // Without a token the body must say whose order it is.
    place(client, &items_only())
        .await
        .assert_problem(400, "invalid_request");
    client
        .get("/orders")
        .await
        .assert_problem(400, "invalid_request");
    // A token still counts when sent.
    let bob = client.with_bearer(&issuer.token("bob", &[]));
    bob.get(&format!("/orders/{id}"))
        .await
        .assert_problem(404, "order_not_found");
    client
        .with_bearer("not-a-jwt")
        .get(&format!("/orders/{id}"))
        .await
        .assert_problem(401, "unauthorized");
    // Fail closed: the admin routes name a scope, so they need a token even
    // though AUTH_REQUIRED is false, and a customer's token is 403.
    client
        .get("/admin/dead-letters")
        .await
        .assert_problem(401, "unauthorized");
    let replay = "/admin/dead-letters/1/replay";
    let refused = client.post_json(replay, &json!({})).await;
    refused.assert_problem(401, "unauthorized");
    assert_eq!(
        refused.header("www-authenticate").as_deref(),
        Some("Bearer")
    );
    bob.post_json(replay, &json!({}))
        .await
        .assert_problem(403, "forbidden");
}

#[actix_web::test]
async fn an_idempotency_key_never_hands_one_customer_anothers_order() {
    let issuer = TestIssuer::start();
    let stack = stack_trusting(&issuer, true).await;
    let client = &stack.order.client;
    let send = |token: String| {
        let client = client.with_bearer(&token);
        async move {
            client
                .send(
                    Method::POST,
                    "/orders",
                    &[
                        ("content-type", "application/json"),
                        ("idempotency-key", "shared-key-1"),
                    ],
                    Some(items_only().to_string().into_bytes()),
                )
                .await
        }
    };
    let first = send(issuer.token("alice", &[])).await;
    first.assert_status(201);
    let id = first.body["order_id"].as_str().expect("an id");

    let other = send(issuer.token("bob", &[])).await;
    other.assert_problem(422, "idempotency_key_reused");
    assert!(other.body.get("order_id").is_none(), "{}", other.text);
    assert!(!other.text.contains(id), "{}", other.text);

    let again = send(issuer.token("alice", &[])).await;
    again.assert_status(200);
    assert_eq!(again.body["order_id"], id);
    assert_eq!(stack.stock("A001").await, 48, "one order held stock");
}

/// A token endpoint (RFC 6749 §4.4) that accepts only `order:s3cret` and
/// answers the `n`th fetch with `tokens[n]` (the last one from then on).
struct TokenEndpoint {
    url: String,
    fetches: Arc<AtomicUsize>,
}

impl TokenEndpoint {
    fn start(tokens: Vec<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("an address").port();
        let fetches = Arc::new(AtomicUsize::new(0));
        let counter = fetches.clone();
        let tokens = Arc::new(tokens);
        let server = HttpServer::new(move || {
            let (counter, tokens) = (counter.clone(), tokens.clone());
            App::new().route(
                "/token",
                web::post().to(move |req: HttpRequest, form: String| {
                    let (counter, tokens) = (counter.clone(), tokens.clone());
                    async move { answer(&req, &form, &counter, &tokens) }
                }),
            )
        })
        .workers(1)
        .listen(listener)
        .expect("listening")
        .run();
        actix_web::rt::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/token"),
            fetches,
        }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Order's settings for this endpoint, with `secret`.
    fn auth(&self, secret: &str) -> AuthConfig {
        AuthConfig {
            client: Some(ClientCredentials {
                token_url: Some(self.url.clone()),
                client_id: "order".into(),
                client_secret: secret.into(),
            }),
            ..AuthConfig::off()
        }
    }
}

fn answer(req: &HttpRequest, form: &str, counter: &AtomicUsize, tokens: &[String]) -> HttpResponse {
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if basic != Some(ORDER_BASIC) || form != "grant_type=client_credentials" {
        return HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Basic"))
            .json(json!({"error": "invalid_client"}));
    }
    let n = counter.fetch_add(1, Ordering::SeqCst);
    let token = &tokens[n.min(tokens.len() - 1)];
    HttpResponse::Ok().json(json!({
        "access_token": token, "token_type": "Bearer", "expires_in": 900, "scope": RESERVE,
    }))
}

/// A stack whose inventory requires `inventory:reserve` tokens of `issuer`,
/// and whose order service gets its tokens from `endpoint` with `secret`.
async fn stack_with_protected_inventory(
    issuer: &TestIssuer,
    endpoint: &TokenEndpoint,
    secret: &str,
) -> Stack {
    let inventory_auth = issuer.auth_config(true);
    let order_auth = endpoint.auth(secret);
    spawn_stack_with(move |c| {
        c.inventory.server.auth = inventory_auth;
        c.order.server.auth = order_auth;
    })
    .await
}

#[actix_web::test]
async fn order_reserves_with_its_own_client_credentials_token() {
    let issuer = TestIssuer::start();
    let endpoint = TokenEndpoint::start(vec![issuer.token("order", &[RESERVE])]);
    let stack = stack_with_protected_inventory(&issuer, &endpoint, "s3cret").await;

    // Inventory really refuses calls without the token.
    stack
        .inventory_client
        .post_json(
            "/reservations",
            &json!({"reservation_id": "x", "lines": [{"sku": "A001", "quantity": 1}]}),
        )
        .await
        .assert_problem(401, "unauthorized");

    for customer in ["c1", "c2", "c3"] {
        stack
            .place(customer, &[("A001", 1)])
            .await
            .assert_status(201);
    }
    let placed = stack.place("c4", &[("A001", 1)]).await;
    placed.assert_status(201);
    let id = placed.body["order_id"].as_str().expect("an id");
    let cancelled = stack
        .order
        .client
        .post_json(&format!("/orders/{id}/cancel"), &json!({}))
        .await;
    cancelled.assert_status(200);
    assert_eq!(stack.stock("A001").await, 47);
    assert_eq!(endpoint.fetches(), 1, "one token served every call");
}

#[actix_web::test]
async fn wrong_client_credentials_fail_orders_like_an_unreachable_inventory() {
    let issuer = TestIssuer::start();
    let endpoint = TokenEndpoint::start(vec![issuer.token("order", &[RESERVE])]);
    let stack = stack_with_protected_inventory(&issuer, &endpoint, "guess-wr0ng").await;

    let refused = stack.place("c1", &[("A001", 1)]).await;
    refused.assert_problem(503, "inventory_unavailable");
    assert!(refused.header("retry-after").is_some());
    assert_eq!(stack.stock("A001").await, 50, "nothing was reserved");
    assert_eq!(endpoint.fetches(), 0);

    let metrics = stack.order.client.get("/metrics").await.text;
    assert!(
        metrics
            .lines()
            .any(|l| l.contains(r#"dependency="inventory""#)
                && l.contains(r#"outcome="credentials""#)),
        "{metrics}"
    );
    let logs = captured_logs();
    let said = |needle: &str| logs.iter().any(|l| l.to_string().contains(needle));
    assert!(said("invalid_client"), "the failure is logged");
    assert!(!said("guess-wr0ng"), "the secret never is");
}

#[actix_web::test]
async fn a_token_inventory_refuses_is_replaced_on_the_next_call() {
    let issuer = TestIssuer::start();
    // The first token is for another audience: inventory answers 401.
    let mut claims = issuer.claims("order", &[RESERVE]);
    claims["aud"] = json!("elsewhere");
    let stale = issuer.signer().sign(&claims);
    let endpoint = TokenEndpoint::start(vec![stale, issuer.token("order", &[RESERVE])]);
    let stack = stack_with_protected_inventory(&issuer, &endpoint, "s3cret").await;

    stack
        .place("c1", &[("A001", 1)])
        .await
        .assert_problem(502, "inventory_refused");
    stack.place("c1", &[("A001", 1)]).await.assert_status(201);
    assert_eq!(endpoint.fetches(), 2);
    assert_eq!(stack.stock("A001").await, 49);
}

#[actix_web::test]
async fn the_service_token_switches_faults_on_order_and_reads_no_orders() {
    let issuer = TestIssuer::start();
    let auth = issuer.auth_config(true);
    let stack = spawn_stack_with(move |c| {
        c.order.server.auth = auth;
        c.order.server.chaos_control = shared_config::Switch::On;
        c.order.service_token = Some("s3cret".into());
    })
    .await;
    let client = &stack.order.client;
    let service = client.with_bearer("s3cret");
    let healed = json!({"failure_rate": 0});
    client
        .put_json("/admin/chaos", &healed)
        .await
        .assert_problem(401, "unauthorized");
    client
        .with_bearer(&issuer.token("alice", &[]))
        .put_json("/admin/chaos", &healed)
        .await
        .assert_problem(403, "forbidden");
    service
        .put_json("/admin/chaos", &healed)
        .await
        .assert_status(200);
    client
        .with_bearer(&issuer.token("ops", &["chaos:write"]))
        .get("/admin/chaos")
        .await
        .assert_status(200);
    // The token names no customer: with tokens required it reads and places nothing.
    service
        .get("/orders?customer_id=alice")
        .await
        .assert_problem(401, "unauthorized");
    place(&service, &order_body("alice", &[("A001", 1)]))
        .await
        .assert_problem(401, "unauthorized");
    assert_eq!(stack.stock("A001").await, 50);
}
