//! The per-email sign-in throttle: guessing ends in 429, and the owner gets
//! back in one interval after the guessing stops.

use std::num::NonZeroU32;
use std::time::Duration;

use identity::throttle::ThrottleSettings;

use crate::helpers::{PASSWORD, spawn_app_with};

#[actix_web::test]
async fn fifty_wrong_passwords_end_in_429_and_the_owner_signs_in_after_the_interval() {
    let app = spawn_app_with(|c| {
        c.sign_in_throttle = ThrottleSettings {
            burst: NonZeroU32::new(5).expect("non-zero"),
            // Long enough that the 45 cheap refusals all fall inside one lock.
            interval: Duration::from_secs(2),
        };
    })
    .await;
    app.sign_up("ada@example.com", PASSWORD)
        .await
        .assert_status(201);

    let mut statuses = Vec::new();
    let mut last = None;
    for i in 0..50 {
        let res = app
            .sign_in("ada@example.com", &format!("guess number {i}"))
            .await;
        statuses.push(res.status.as_u16());
        last = Some(res);
    }
    // The burst of failures is answered 401, everything after it 429.
    assert_eq!(statuses[..5], [401; 5]);
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    let last = last.expect("fifty attempts");
    last.assert_problem(429, "rate_limited");
    let retry_after: u64 = last
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("whole seconds");
    assert!(
        (1..=2).contains(&retry_after),
        "at most one interval: {retry_after}"
    );

    // While locked, even the right password is refused, unverified.
    app.sign_in("ada@example.com", PASSWORD)
        .await
        .assert_problem(429, "rate_limited");

    // The documented worst case: one interval after the last attempt.
    actix_web::rt::time::sleep(Duration::from_secs(retry_after)).await;
    app.sign_in("ada@example.com", PASSWORD)
        .await
        .assert_status(200);
}

#[actix_web::test]
async fn unknown_emails_are_throttled_the_same_way() {
    let app = spawn_app_with(|c| {
        c.sign_in_throttle.burst = NonZeroU32::new(2).expect("non-zero");
    })
    .await;
    app.sign_up("ada@example.com", PASSWORD)
        .await
        .assert_status(201);
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..4 {
        known.push(
            app.sign_in("ada@example.com", "wrong password!")
                .await
                .status
                .as_u16(),
        );
        unknown.push(
            app.sign_in("bob@example.com", "wrong password!")
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(known, [401, 401, 429, 429]);
    assert_eq!(known, unknown, "no hint of which account exists");
    // Another account is untouched.
    app.sign_up("cy@example.com", PASSWORD)
        .await
        .assert_status(201);
    app.sign_in("cy@example.com", PASSWORD)
        .await
        .assert_status(200);
}

#[actix_web::test]
async fn successful_sign_ins_spend_nothing() {
    let app = spawn_app_with(|c| {
        c.sign_in_throttle.burst = NonZeroU32::new(1).expect("non-zero");
    })
    .await;
    app.sign_up("ada@example.com", PASSWORD)
        .await
        .assert_status(201);
    for _ in 0..5 {
        app.sign_in("ada@example.com", PASSWORD)
            .await
            .assert_status(200);
    }
}

#[actix_web::test]
async fn a_wave_of_forty_parallel_guesses_gets_the_burst_checked_and_no_more() {
    use futures::StreamExt;

    let app = spawn_app_with(|c| {
        c.sign_in_throttle.interval = Duration::from_secs(600);
    })
    .await;
    app.sign_up("ada@example.com", PASSWORD)
        .await
        .assert_status(201);
    let hashes_before = app.metric("identity_password_hashes_total").await;

    let guesses: Vec<String> = (0..40).map(|i| format!("parallel guess {i}")).collect();
    let mut wave: futures::stream::FuturesUnordered<_> = guesses
        .iter()
        .map(|guess| app.sign_in("ada@example.com", guess))
        .collect();
    let mut statuses = Vec::new();
    let mut right = None;
    while let Some(res) = wave.next().await {
        statuses.push(res.status.as_u16());
        // The first 429 says the burst is taken; the owner's right password,
        // sent now amid the wave, must not get through.
        if res.status == 429 && right.is_none() {
            right = Some(app.sign_in("ada@example.com", PASSWORD).await);
        }
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(
        (checked, throttled),
        (5, 35),
        "guesses checked out of a wave of 40: {statuses:?}"
    );
    right
        .expect("the wave ran into the throttle")
        .assert_problem(429, "rate_limited");
    assert_eq!(
        app.metric(r#"identity_sign_ins_total{outcome="invalid_credentials"}"#)
            .await,
        5.0
    );
    assert_eq!(
        app.metric("identity_password_hashes_total").await,
        hashes_before + 5.0,
        "only the checked guesses were hashed"
    );
}
