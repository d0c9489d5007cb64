//! The identity metrics move by exactly the traffic sent.

use std::num::NonZeroU32;

use crate::helpers::{CLIENT_ID, CLIENT_SECRET, PASSWORD, basic, spawn_app_with};

const ACCOUNTS: &str = "identity_accounts_created_total";
const SUCCESS: &str = r#"identity_sign_ins_total{outcome="success"}"#;
const INVALID: &str = r#"identity_sign_ins_total{outcome="invalid_credentials"}"#;
const THROTTLED: &str = r#"identity_sign_ins_total{outcome="throttled"}"#;
const SESSION: &str = r#"identity_tokens_issued_total{grant="session"}"#;
const CLIENT: &str = r#"identity_tokens_issued_total{grant="client_credentials"}"#;

#[actix_web::test]
async fn each_counter_moves_by_exactly_the_traffic_sent() {
    let app =
        spawn_app_with(|c| c.sign_in_throttle.burst = NonZeroU32::new(2).expect("non-zero")).await;
    let series = [ACCOUNTS, SUCCESS, INVALID, THROTTLED, SESSION, CLIENT];
    let mut before = Vec::new();
    for s in series {
        before.push(app.metric(s).await);
    }
    assert_eq!(before, [0.0; 6], "every series exists from the start at 0");

    app.sign_up("ada@example.com", PASSWORD)
        .await
        .assert_status(201);
    app.sign_up("ada@example.com", PASSWORD)
        .await
        .assert_status(409);
    app.sign_up("bob@example.com", "short")
        .await
        .assert_status(400);
    for _ in 0..3 {
        app.sign_in("ada@example.com", PASSWORD)
            .await
            .assert_status(200);
    }
    app.sign_in("bob@example.com", "wrong password")
        .await
        .assert_status(401);
    app.sign_in("bob@example.com", "wrong password")
        .await
        .assert_status(401);
    for _ in 0..4 {
        app.sign_in("bob@example.com", "wrong password")
            .await
            .assert_status(429);
    }
    let auth = basic(CLIENT_ID, CLIENT_SECRET);
    for _ in 0..2 {
        app.token(Some(&auth), "grant_type=client_credentials")
            .await
            .assert_status(200);
    }
    app.token(None, "grant_type=client_credentials")
        .await
        .assert_status(401);

    let mut after = Vec::new();
    for s in series {
        after.push(app.metric(s).await);
    }
    assert_eq!(after, [1.0, 3.0, 2.0, 4.0, 3.0, 2.0], "{series:?}");
}
