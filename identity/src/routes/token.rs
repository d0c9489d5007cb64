//! `POST /token`: the OAuth 2.0 client credentials grant (RFC 6749 §4.4).
//!
//! The client authenticates with HTTP Basic (§2.3.1); errors are the JSON of
//! §5.2, not problem+json, because OAuth clients parse that.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::no_store;
use crate::clients::{BasicCredentials, ClientRegistry};
use crate::domain::Scopes;
use crate::error::{Error, OAuthError, OAuthErrorCode};
use crate::metrics::{Grant, IdentityMetrics};
use crate::tokens::TokenIssuer;

/// The form fields (application/x-www-form-urlencoded).
#[derive(Deserialize, ToSchema)]
#[expect(
    dead_code,
    reason = "the form's schema; `parse_form` reads the fields one by one to refuse repeats"
)]
pub struct TokenRequest {
    /// Only `client_credentials`.
    #[schema(example = "client_credentials")]
    grant_type: String,
    /// Space-separated scopes, all among the client's; absent = all of them.
    #[schema(example = "inventory:reserve")]
    scope: Option<String>,
}

/// A token for the client.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT (ES256); send it as `Authorization: Bearer …`.
    access_token: String,
    #[schema(example = "Bearer")]
    token_type: &'static str,
    /// Seconds until it expires.
    #[schema(example = 900)]
    expires_in: u64,
    /// The scopes granted, space-separated.
    #[schema(example = "inventory:reserve")]
    scope: String,
}

/// Issues a token to a client, which authenticates with HTTP Basic:
/// `Authorization: Basic base64(urlencode(client_id) ":" urlencode(client_secret))`.
#[utoipa::path(
    tag = "token",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A token for the client.", body = TokenResponse),
        (status = 400, description = "`invalid_request`, `unsupported_grant_type` or `invalid_scope` (RFC 6749 §5.2).",
            body = OAuthError),
        (status = 401, description = "`invalid_client`: no or wrong client credentials (RFC 6749 §5.2).",
            body = OAuthError,
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"identity\"`"))),
    )
)]
#[post("/token")]
#[tracing::instrument(skip_all, fields(client_id))]
pub async fn issue_token(
    request: HttpRequest,
    body: web::Bytes,
    clients: web::Data<ClientRegistry>,
    issuer: web::Data<TokenIssuer>,
    metrics: web::Data<IdentityMetrics>,
) -> Result<HttpResponse, Error> {
    let form = parse_form(&request, &body)?;
    let credentials = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(BasicCredentials::parse)
        .ok_or_else(|| {
            oauth(
                OAuthErrorCode::InvalidClient,
                "authenticate with HTTP Basic",
            )
        })?;
    let client = clients.authenticate(&credentials).ok_or_else(|| {
        oauth(
            OAuthErrorCode::InvalidClient,
            "unknown client or wrong secret",
        )
    })?;
    tracing::Span::current().record("client_id", client.id.as_str());
    let scopes = granted_scopes(&client.scopes, form)?;
    let token = issuer.issue(&client.id, &scopes)?;
    metrics.token_issued(Grant::ClientCredentials);
    Ok(no_store(&mut HttpResponse::Ok()).json(TokenResponse {
        access_token: token.access_token,
        token_type: "Bearer",
        expires_in: token.expires_in,
        scope: scopes.to_claim(),
    }))
}

fn oauth(code: OAuthErrorCode, description: &str) -> Error {
    OAuthError::new(code, description).into()
}

/// The form, each field at most once (RFC 6749 §3.2).
fn parse_form(request: &HttpRequest, body: &[u8]) -> Result<Vec<(String, String)>, Error> {
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !is_form {
        return Err(oauth(
            OAuthErrorCode::InvalidRequest,
            "send the parameters as application/x-www-form-urlencoded",
        ));
    }
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| oauth(OAuthErrorCode::InvalidRequest, "the form cannot be read"))?;
    for (i, (name, _)) in fields.iter().enumerate() {
        if fields[..i].iter().any(|(n, _)| n == name) {
            return Err(oauth(
                OAuthErrorCode::InvalidRequest,
                "a parameter is repeated",
            ));
        }
    }
    Ok(fields)
}

/// The grant type checked, the scopes narrowed to those asked for.
fn granted_scopes(allowed: &Scopes, form: Vec<(String, String)>) -> Result<Scopes, Error> {
    let field = |name: &str| {
        form.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    match field("grant_type") {
        None => Err(oauth(
            OAuthErrorCode::InvalidRequest,
            "grant_type is missing",
        )),
        Some("client_credentials") => match field("scope") {
            None => Ok(allowed.clone()),
            Some(wanted) => allowed.narrow_to(wanted).map_err(|_| {
                oauth(
                    OAuthErrorCode::InvalidScope,
                    "a requested scope is unknown or not granted to this client",
                )
            }),
        },
        Some(_) => Err(oauth(
            OAuthErrorCode::UnsupportedGrantType,
            "only client_credentials is supported",
        )),
    }
}
