//! `POST /sessions`: sign in with email and password, get an access token.

use actix_web::{HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use shared_http::openapi::PROBLEM_JSON;
use shared_http::problem::ProblemDetails;
use utoipa::ToSchema;

use super::no_store;
use crate::domain::{Email, Password, Scope, Scopes};
use crate::error::Error;
use crate::hashing::HashingPool;
use crate::metrics::{Grant, IdentityMetrics, SignInOutcome};
use crate::store::{Credentials, Origin, Store};
use crate::throttle::{Attempt, SignInThrottle};
use crate::tokens::TokenIssuer;

/// `IDENTITY_OPERATORS`: whose session tokens carry the operator scopes,
/// when their account was provisioned.
pub struct Operators(pub Vec<Email>);

impl Operators {
    /// The scopes of a session for `email`'s verified `credentials`: the
    /// operator's only when the configuration provisioned these credentials,
    /// never for an account someone signed up with an operator's email.
    fn scopes_for(&self, email: &Email, credentials: &Credentials) -> Scopes {
        if credentials.origin == Origin::Provisioned && self.0.contains(email) {
            Scope::OPERATOR.into_iter().collect()
        } else {
            Scopes::default()
        }
    }
}

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
        (status = 503, description = "`busy`: too many passwords are being checked; this attempt was not counted. See `Retry-After`.",
            body = ProblemDetails, content_type = PROBLEM_JSON,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    )
)]
#[post("/sessions")]
#[tracing::instrument(skip_all)]
pub async fn create_session(
    store: web::Data<Store>,
    hashing: web::Data<HashingPool>,
    throttle: web::Data<SignInThrottle>,
    issuer: web::Data<TokenIssuer>,
    operators: web::Data<Operators>,
    metrics: web::Data<IdentityMetrics>,
    body: web::Json<CreateSessionRequest>,
) -> Result<HttpResponse, Error> {
    let body = body.into_inner();
    let outcome = authenticate(&store, &hashing, &throttle, body).await;
    let (credentials, email) = match outcome {
        Ok(found) => found,
        Err(e) => {
            match e {
                Error::SignInThrottled { .. } => metrics.sign_in(SignInOutcome::Throttled),
                Error::InvalidCredentials => metrics.sign_in(SignInOutcome::InvalidCredentials),
                // Busy or broken: no verdict on the credentials.
                _ => {}
            }
            return Err(e);
        }
    };
    let customer_id = credentials.customer_id.clone();
    let scopes = operators.scopes_for(&email, &credentials);
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

/// The account these credentials are for. One of the email's attempts is
/// taken first, atomically, so that a wave of guesses in parallel gets no more
/// checked than one after another; a success, or a guess never checked, gives
/// it back (see [`crate::throttle`]).
async fn authenticate(
    store: &Store,
    hashing: &HashingPool,
    throttle: &SignInThrottle,
    body: CreateSessionRequest,
) -> Result<(Credentials, Email), Error> {
    // No account has a malformed email: nothing to throttle or to verify.
    let email = Email::parse(&body.email).map_err(|_| Error::InvalidCredentials)?;
    let attempt = throttle
        .try_attempt(&email)
        .map_err(|retry_after| Error::SignInThrottled { retry_after })?;
    // An oversized password is refused unhashed (no account has one).
    let Ok(password) = Password::for_sign_in(body.password) else {
        return Err(failed(attempt));
    };
    let checked = async {
        let credentials = store.credentials(&email).await?;
        let stored = credentials.as_ref().map(|c| c.password_hash.clone());
        let verified = hashing
            .run(move |hasher| hasher.verify(&password, stored.as_deref()))
            .await?;
        Ok::<_, Error>(credentials.filter(|_| verified))
    };
    match checked.await {
        Ok(Some(credentials)) => {
            attempt.give_back();
            Ok((credentials, email))
        }
        Ok(None) => Err(failed(attempt)),
        Err(e) => {
            attempt.give_back();
            Err(e)
        }
    }
}

/// A wrong password: the attempt stays spent.
fn failed(attempt: Attempt<'_>) -> Error {
    if let Some(locked_for) = attempt.spend() {
        tracing::warn!(
            locked_for_s = locked_for.as_secs(),
            "sign-ins throttled for an email"
        );
    }
    Error::InvalidCredentials
}
