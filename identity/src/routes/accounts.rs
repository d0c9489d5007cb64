//! `POST /accounts`: sign up.

use actix_web::{HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use shared_http::openapi::PROBLEM_JSON;
use shared_http::problem::ProblemDetails;
use utoipa::ToSchema;

use super::Operators;
use crate::domain::{CustomerId, Email, Name, Password};
use crate::error::Error;
use crate::hashing::HashingPool;
use crate::metrics::IdentityMetrics;
use crate::store::{NewAccount, Origin, Store};

/// A new account. (No `Debug`: it holds a password.)
#[derive(Deserialize, ToSchema)]
pub struct CreateAccountRequest {
    /// Trimmed and lowercased; at most 254 characters.
    #[schema(example = "ada@example.com", max_length = 254)]
    email: String,
    /// 10 or more characters, at most 128 bytes, not the email, not one character repeated.
    #[schema(example = "correct horse battery", format = Password, min_length = 10, max_length = 128)]
    password: String,
    /// 1 to 100 characters, no control characters.
    #[schema(example = "Ada Lovelace", min_length = 1, max_length = 100)]
    name: String,
}

/// The account created.
#[derive(Serialize, ToSchema)]
pub struct AccountResponse {
    /// The account's id (a UUID v7): the `sub` of its tokens.
    #[schema(example = "01936f3e-8a7b-7c3d-9e2f-1a2b3c4d5e6f")]
    customer_id: String,
    #[schema(example = "ada@example.com")]
    email: String,
    #[schema(example = "Ada Lovelace")]
    name: String,
}

/// Creates an account.
#[utoipa::path(
    tag = "accounts",
    request_body = CreateAccountRequest,
    responses(
        (status = 201, description = "The account.", body = AccountResponse),
        (status = 400, description = "`invalid_request`: a malformed email, a weak or oversized password, or a bad name.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 409, description = "`email_taken`: an account has this email (compared case-insensitively).",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 503, description = "`busy`: too many passwords are being hashed; nothing was created. See `Retry-After`.",
            body = ProblemDetails, content_type = PROBLEM_JSON,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    )
)]
#[post("/accounts")]
#[tracing::instrument(skip_all)]
pub async fn create_account(
    store: web::Data<Store>,
    hashing: web::Data<HashingPool>,
    metrics: web::Data<IdentityMetrics>,
    operators: web::Data<Operators>,
    body: web::Json<CreateAccountRequest>,
) -> Result<HttpResponse, Error> {
    let body = body.into_inner();
    let email = Email::parse(&body.email)?;
    let name = Name::parse(&body.name)?;
    // Checked before hashing: an oversized password costs nothing (and says
    // nothing about the email: only the input is looked at).
    let password = Password::new_for(body.password, &email)?;
    let password_hash = hashing.run(move |hasher| hasher.hash(&password)).await??;
    // Operators are provisioned (`IDENTITY_ACCOUNTS`), never signed up. Refused
    // only after hashing, like any taken email: answering sooner would tell
    // by its speed which emails are operators'.
    if operators.0.contains(&email) {
        return Err(Error::EmailTaken);
    }
    let account = NewAccount {
        customer_id: CustomerId::generate(),
        email,
        name,
        password_hash,
        origin: Origin::SignedUp,
    };
    if !store.create_account(&account).await? {
        return Err(Error::EmailTaken);
    }
    metrics.account_created();
    tracing::info!(
        customer_id = account.customer_id.as_str(),
        "account created"
    );
    Ok(HttpResponse::Created().json(AccountResponse {
        customer_id: account.customer_id.as_str().to_owned(),
        email: account.email.as_str().to_owned(),
        name: account.name.as_str().to_owned(),
    }))
}
