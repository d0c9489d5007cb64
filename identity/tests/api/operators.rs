//! Operator scopes attach only to the credentials `IDENTITY_ACCOUNTS`
//! provisioned: an operator's email registered by someone else first never
//! carries them, and provisioning takes such an account over.

use identity::seed::SeedAccount;
use shared_testkit::TestResponse;

use crate::helpers::{OPERATOR, PASSWORD, TestApp, spawn_app_with};

const SQUATTER_PASSWORD: &str = "the squatter's own password";
const HASHES: &str = "identity_password_hashes_total";

/// Identity before the operator is configured: anyone may sign up its email.
async fn before_the_operator_is_configured() -> TestApp {
    spawn_app_with(|c| {
        c.operators.clear();
        c.accounts = std::sync::Arc::new([]);
    })
    .await
}

fn token(res: &TestResponse) -> &str {
    res.body["access_token"].as_str().expect("a token")
}

#[actix_web::test]
async fn an_operator_email_signed_up_in_advance_is_taken_over_at_provisioning() {
    let mut app = before_the_operator_is_configured().await;
    let squatter = app.sign_up(OPERATOR, SQUATTER_PASSWORD).await;
    squatter.assert_status(201);
    let squatter_id = squatter.body["customer_id"].clone();
    let earlier = app.sign_in(OPERATOR, SQUATTER_PASSWORD).await;
    earlier.assert_status(200);
    let claims = app.verify(token(&earlier)).await;
    assert_eq!(
        (&claims["scope"], &claims["sub"]),
        (&"".into(), &squatter_id)
    );

    // The operator is configured (listed and provisioned) and identity restarts.
    app.restart_with(|_| {}).await;
    app.sign_in(OPERATOR, SQUATTER_PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
    let operator = app.sign_in(OPERATOR, PASSWORD).await;
    operator.assert_status(200);
    assert_eq!(
        app.scopes_of(token(&operator)).await,
        [
            "chaos:write",
            "inventory:write",
            "orders:admin",
            "pricing:write"
        ]
    );
    // A new id: the token issued to the squatter names someone else.
    assert_ne!(operator.body["customer_id"], squatter_id);

    // Another restart leaves the provisioned account as it is.
    app.restart_with(|_| {}).await;
    let again = app.sign_in(OPERATOR, PASSWORD).await;
    again.assert_status(200);
    assert_eq!(again.body["customer_id"], operator.body["customer_id"]);
}

#[actix_web::test]
async fn a_listed_operator_whose_account_was_never_provisioned_gets_no_scopes() {
    let mut app = before_the_operator_is_configured().await;
    app.sign_up(OPERATOR, SQUATTER_PASSWORD)
        .await
        .assert_status(201);
    // Listed in IDENTITY_OPERATORS, but IDENTITY_ACCOUNTS does not provision it.
    app.restart_with(|c| c.accounts = std::sync::Arc::new([]))
        .await;
    let res = app.sign_in(OPERATOR, SQUATTER_PASSWORD).await;
    res.assert_status(200);
    assert!(app.scopes_of(token(&res)).await.is_empty());
}

#[actix_web::test]
async fn a_changed_operator_password_replaces_the_old_one_and_keeps_the_account() {
    let mut app = spawn_app_with(|_| {}).await;
    let first = app.sign_in(OPERATOR, PASSWORD).await;
    first.assert_status(200);
    let new_password = "a brand new operator password";
    app.restart_with(|c| {
        c.accounts = SeedAccount::parse_list(&format!(
            r#"[{{"email": "{OPERATOR}", "password": "{new_password}", "name": "Operator"}}]"#
        ))
        .expect("the operator account")
        .into();
    })
    .await;
    app.sign_in(OPERATOR, PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
    let res = app.sign_in(OPERATOR, new_password).await;
    res.assert_status(200);
    assert_eq!(res.body["customer_id"], first.body["customer_id"]);
    assert_eq!(app.scopes_of(token(&res)).await.len(), 4);
}

#[actix_web::test]
async fn signing_up_an_operator_email_costs_a_hash_like_any_taken_email() {
    // Refusing an operator's email before hashing answered in 1 ms instead of
    // 30: the speed told which emails are operators'. The path is the same now.
    let app = spawn_app_with(|_| {}).await;
    app.sign_up("ada@example.com", PASSWORD)
        .await
        .assert_status(201);
    for email in [OPERATOR, "ada@example.com"] {
        let before = app.metric(HASHES).await;
        app.sign_up(email, "another password 1")
            .await
            .assert_problem(409, "email_taken");
        assert_eq!(app.metric(HASHES).await, before + 1.0, "{email}");
    }
}
