//! `RATE_LIMIT_SIGNIN_PER_MIN`: the routes that take a password or a client
//! secret share one quota per client address, and only they spend it.

use std::num::NonZeroU32;

use crate::helpers::{CLIENT_ID, CLIENT_SECRET, PASSWORD, basic, spawn_app_with};

#[actix_web::test]
async fn sign_up_sign_in_and_token_share_the_sign_in_quota_per_address() {
    let app = spawn_app_with(|c| {
        c.server.rate_limits.sign_in_per_min = NonZeroU32::new(3);
    })
    .await;
    let sign_up = app.sign_up("ada@example.com", PASSWORD).await;
    sign_up.assert_status(201);
    assert_eq!(
        sign_up.header("ratelimit").as_deref(),
        Some(r#""sign_in";r=2;t=20"#)
    );
    app.sign_in("ada@example.com", PASSWORD)
        .await
        .assert_status(200);
    app.token(
        Some(&basic(CLIENT_ID, CLIENT_SECRET)),
        "grant_type=client_credentials",
    )
    .await
    .assert_status(200);

    // The quota is spent, whichever route comes next, right credentials or not.
    for res in [
        app.sign_in("ada@example.com", PASSWORD).await,
        app.sign_up("bob@example.com", PASSWORD).await,
    ] {
        res.assert_problem(429, "rate_limited");
        assert!(res.header("retry-after").is_some());
        assert_eq!(
            res.header("ratelimit-policy").as_deref(),
            Some(r#""sign_in";q=3;w=60"#)
        );
    }
    // Reads are not charged to it.
    app.client()
        .get("/.well-known/jwks.json")
        .await
        .assert_status(200);
    assert_eq!(
        app.metric(r#"http_requests_rate_limited_total{class="sign_in"}"#)
            .await,
        2.0
    );
}
