//! `POST /sessions`: sign in with email and password, get an access token.

use actix_web::{HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use shared::openapi::PROBLEM_JSON;
use shared::problem::ProblemDetails;
use utoipa::ToSchema;

use super::{no_store, off_the_workers};
use crate::domain::{CustomerId, Email, Password, Scope, Scopes};
use crate::error::Error;
use crate::metrics::{Grant, IdentityMetrics, SignInOutcome};
use crate::passwords::Hasher;
use crate::store::Store;
use crate::throttle::SignInThrottle;
use crate::tokens::TokenIssuer;

/// `IDENTITY_OPERATORS`: whose session tokens carry the operator scopes.
pub struct Operators(pub Vec<Email>);

/// Credentials. (No `Debug`: it holds a password.)
#[derive(Deserialize, ToSchema)]
pub struct CreateSessionRequest {
    #[schema(example = "ada@example.com")]
    email: String,
    #[schema(example = "correct horse battery", format = Password)]
    password: String,
}

/// An access token for the account.
#[derive(Serialize, ToSchema)]
pub struct SessionResponse {
    /// A JWT (ES256); send it as `Authorization: Bearer …`.
    access_token: String,
    #[schema(example = "Bearer")]
    token_type: &'static str,
    /// Seconds until it expires.
    #[schema(example = 900)]
    expires_in: u64,
    #[schema(example = "01936f3e-8a7b-7c3d-9e2f-1a2b3c4d5e6f")]
    customer_id: String,
}

/// Signs in.
#[utoipa::path(
    tag = "sessions",
    request_body = CreateSessionRequest,
    responses(
        (status = 200, description = "A token for the account.", body = SessionResponse),
        (status = 401, description = "`invalid_credentials`: the same answer whether or not the account exists.",
            body = ProblemDetails, content_type = PROBLEM_JSON),
        (status = 429, description = "`rate_limited`: too many failed sign-ins for this email; see `Retry-After`.",
            body = ProblemDetails, content_type = PROBLEM_JSON,
            headers(("Retry-After" = u64, description = "Seconds until another attempt is allowed."))),
    )
)]
#[post("/sessions")]
#[tracing::instrument(skip_all)]
pub async fn create_session(
    store: web::Data<Store>,
    hasher: web::Data<Hasher>,
    throttle: web::Data<SignInThrottle>,
    issuer: web::Data<TokenIssuer>,
    operators: web::Data<Operators>,
    metrics: web::Data<IdentityMetrics>,
    body: web::Json<CreateSessionRequest>,
) -> Result<HttpResponse, Error> {
    let body = body.into_inner();
    let outcome = authenticate(&store, hasher.into_inner(), &throttle, body).await;
    let (customer_id, email) = match outcome {
        Ok(found) => found,
        Err(e) => {
            metrics.sign_in(match e {
                Error::SignInThrottled { .. } => SignInOutcome::Throttled,
                _ => SignInOutcome::InvalidCredentials,
            });
            return Err(e);
        }
    };
    let scopes: Scopes = if operators.0.contains(&email) {
        Scope::OPERATOR.into_iter().collect()
    } else {
        Scopes::default()
    };
    let token = issuer.issue(customer_id.as_str(), &scopes)?;
    metrics.sign_in(SignInOutcome::Success);
    metrics.token_issued(Grant::Session);
    Ok(no_store(&mut HttpResponse::Ok()).json(SessionResponse {
        access_token: token.access_token,
        token_type: "Bearer",
        expires_in: token.expires_in,
        customer_id: customer_id.as_str().to_owned(),
    }))
}

/// The account these credentials are for; the throttle is checked first and
/// a failure spends one of the email's attempts (see [`crate::throttle`]).
async fn authenticate(
    store: &Store,
    hasher: std::sync::Arc<Hasher>,
    throttle: &SignInThrottle,
    body: CreateSessionRequest,
) -> Result<(CustomerId, Email), Error> {
    // No account has a malformed email: nothing to throttle or to verify.
    let email = Email::parse(&body.email).map_err(|_| Error::InvalidCredentials)?;
    throttle
        .check(&email)
        .map_err(|retry_after| Error::SignInThrottled { retry_after })?;
    let fail = || {
        if let Some(locked_for) = throttle.record_failure(&email) {
            tracing::warn!(
                locked_for_s = locked_for.as_secs(),
                "sign-ins throttled for an email"
            );
        }
        Err(Error::InvalidCredentials)
    };
    // An oversized password is refused unhashed (no account has one).
    let Ok(password) = Password::for_sign_in(body.password) else {
        return fail();
    };
    let credentials = store.credentials(&email).await?;
    let stored = credentials.as_ref().map(|c| c.password_hash.clone());
    let verified = off_the_workers(move || hasher.verify(&password, stored.as_deref())).await?;
    match credentials {
        Some(c) if verified => Ok((c.customer_id, email)),
        _ => fail(),
    }
}
