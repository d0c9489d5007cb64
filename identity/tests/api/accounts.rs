//! `POST /accounts`.

use serde_json::json;

use crate::helpers::{PASSWORD, spawn_app};

#[actix_web::test]
async fn an_account_is_created_with_a_uuid_and_its_normalised_email() {
    let app = spawn_app().await;
    let res = app.sign_up("  Ada@Example.COM ", PASSWORD).await;
    res.assert_status(201);
    assert_eq!(res.body["email"], "ada@example.com");
    assert_eq!(res.body["name"], "Ada");
    let id = res.body["customer_id"].as_str().expect("an id");
    let uuid = uuid::Uuid::parse_str(id).expect("a UUID");
    assert_eq!(uuid.get_version_num(), 7);
    assert!(!res.text.contains(PASSWORD));
}

#[actix_web::test]
async fn a_taken_email_is_409_whatever_its_case() {
    let app = spawn_app().await;
    app.sign_up("ada@example.com", PASSWORD)
        .await
        .assert_status(201);
    app.sign_up("ADA@example.com", "another good password")
        .await
        .assert_problem(409, "email_taken");
    // The first password still signs in: nothing was overwritten.
    app.sign_in("Ada@Example.com", PASSWORD)
        .await
        .assert_status(200);
}

#[actix_web::test]
async fn malformed_emails_are_400() {
    let app = spawn_app().await;
    let long = format!("{}@example.com", "a".repeat(250));
    for email in [
        "",
        "ada",
        "ada@",
        "@example.com",
        "ada@example",
        "ada@@example.com",
        "ada example@x.com",
        "ada@example.c0m",
        long.as_str(),
    ] {
        let res = app.sign_up(email, PASSWORD).await;
        assert_eq!(res.status, 400, "{email:?}: {}", res.text);
        res.assert_problem(400, "invalid_request");
    }
}

#[actix_web::test]
async fn weak_or_oversized_passwords_are_400_never_500() {
    let app = spawn_app().await;
    let oversized = "Ab1-".repeat(33); // 132 bytes
    let multibyte = "ÄÖÜ".repeat(22); // 66 characters, 132 bytes
    for password in [
        "",
        "short",
        "123456789",
        "aaaaaaaaaaaaaaaa",
        "ada@example.com",
        "ADA@EXAMPLE.COM",
        oversized.as_str(),
        multibyte.as_str(),
    ] {
        let res = app.sign_up("ada@example.com", password).await;
        assert_eq!(res.status, 400, "{password:?}: {}", res.text);
        res.assert_problem(400, "invalid_request");
        assert!(
            password.is_empty() || !res.text.contains(password),
            "the password is not echoed"
        );
    }
    // 128 bytes exactly is fine.
    app.sign_up("ada@example.com", &"Ab1-".repeat(32))
        .await
        .assert_status(201);
}

#[actix_web::test]
async fn a_one_megabyte_password_is_refused_cheaply() {
    let app = spawn_app().await;
    let huge = "x".repeat(1024 * 1024);
    let res = app.sign_up("ada@example.com", &huge).await;
    assert!(
        [400, 413].contains(&res.status.as_u16()),
        "{}: {}",
        res.status,
        &res.text[..res.text.len().min(200)]
    );
    let res = app.sign_in("ada@example.com", &huge).await;
    assert!([401, 413].contains(&res.status.as_u16()), "{}", res.status);
}

#[actix_web::test]
async fn bad_names_and_missing_fields_are_400() {
    let app = spawn_app().await;
    for name in [
        json!(""),
        json!("   "),
        json!("a\u{7}b"),
        json!("n".repeat(101)),
    ] {
        let body = json!({"email": "ada@example.com", "password": PASSWORD, "name": name});
        app.client()
            .post_json("/accounts", &body)
            .await
            .assert_problem(400, "invalid_request");
    }
    app.client()
        .post_json("/accounts", &json!({"email": "ada@example.com"}))
        .await
        .assert_problem(400, "invalid_request");
}
