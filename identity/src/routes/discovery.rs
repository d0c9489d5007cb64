//! `GET /.well-known/openid-configuration` and `GET /.well-known/jwks.json`:
//! what a verifier needs to check our tokens.

use actix_web::http::header;
use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::Scope;
use crate::keys::Jwk;
use crate::tokens::TokenIssuer;

/// The claims every access token carries.
const CLAIMS: [&str; 8] = ["iss", "aud", "sub", "exp", "iat", "nbf", "jti", "scope"];

/// The discovery document (OpenID Connect Discovery 1.0 / RFC 8414 members).
#[derive(Serialize, ToSchema)]
pub struct DiscoveryDocument {
    #[schema(example = "http://localhost:7004")]
    issuer: String,
    #[schema(example = "http://localhost:7004/.well-known/jwks.json")]
    jwks_uri: String,
    #[schema(example = "http://localhost:7004/token")]
    token_endpoint: String,
    id_token_signing_alg_values_supported: [&'static str; 1],
    token_endpoint_auth_methods_supported: [&'static str; 1],
    grant_types_supported: [&'static str; 1],
    scopes_supported: Vec<&'static str>,
    response_types_supported: [&'static str; 1],
    subject_types_supported: [&'static str; 1],
    claims_supported: [&'static str; 8],
}

/// Where the keys and the token endpoint are.
#[utoipa::path(
    tag = "discovery",
    responses((status = 200, description = "The discovery document.", body = DiscoveryDocument))
)]
#[get("/.well-known/openid-configuration")]
pub async fn openid_configuration(issuer: web::Data<TokenIssuer>) -> HttpResponse {
    let base = issuer.issuer();
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(DiscoveryDocument {
            issuer: base.to_owned(),
            jwks_uri: format!("{base}/.well-known/jwks.json"),
            token_endpoint: format!("{base}/token"),
            id_token_signing_alg_values_supported: ["ES256"],
            token_endpoint_auth_methods_supported: ["client_secret_basic"],
            grant_types_supported: ["client_credentials"],
            scopes_supported: Scope::ALL.iter().map(|s| s.as_str()).collect(),
            response_types_supported: ["token"],
            subject_types_supported: ["public"],
            claims_supported: CLAIMS,
        })
}

/// The published keys, the signing one first.
#[derive(Serialize, ToSchema)]
pub struct JwkSet {
    keys: Vec<Jwk>,
}

/// The public keys that verify our tokens.
#[utoipa::path(
    tag = "discovery",
    responses((status = 200, description = "The public keys (ES256).", body = JwkSet))
)]
#[get("/.well-known/jwks.json")]
pub async fn jwks(issuer: web::Data<TokenIssuer>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(JwkSet {
            keys: issuer.keys().jwks(),
        })
}
