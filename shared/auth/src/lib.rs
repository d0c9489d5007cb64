//! Who is calling, and whether they may: every service as an OAuth 2.0
//! resource server.
//!
//! [`middleware`] (in every service's stack, see `shared_server`) reads the
//! `Authorization: Bearer …` header once per request and leaves a [`Caller`]
//! in the request:
//!
//! - the `SERVICE_TOKEN` of a service that accepts one ([`ServiceToken`]):
//!   a *service* caller, holding the scopes that token grants there;
//! - with `AUTH_ISSUER` set, any other bearer token is verified
//!   ([`jwt::Verifier`]): a good one is a *bearer* caller with its subject and
//!   scopes, a bad one is answered 401 at once, whatever the route;
//! - otherwise an *anonymous* caller (with auth off, tokens are not read).
//!
//! Handlers then state what they need: [`Authorized<S>`] as an extractor for
//! a scope, or [`Caller::require_scope`] / [`Caller::require_subject`] where
//! the rule depends on the data (an order's owner). The two differ for
//! anonymous callers, and fail closed:
//!
//! - a scope is never held by an anonymous caller once someone could hold it:
//!   with `AUTH_ISSUER` set, or a service token granting it, a route that
//!   names a scope answers 401 without a token, whatever `AUTH_REQUIRED` says;
//! - a subject is needed only with `AUTH_REQUIRED`: it governs the customer
//!   routes alone, so that optional auth serves customers as before tokens.
//!
//! With no access control configured every caller passes, as in the seed's
//! commands and the local demo.
//!
//! For the calls a service makes, [`client::TokenSource`] gets its own token
//! with its client credentials (`AUTH_CLIENT_ID` / `AUTH_CLIENT_SECRET`).
//! Both fetch from the provider through [`http::ProviderHttp`]: https (rustls,
//! Mozilla's roots and `AUTH_CA_FILE`) or http, no redirects, a timeout.
//!
//! The scope names are the services' business (see their `auth` modules);
//! this module only compares them. Health, metrics and the API description
//! never look at tokens.
//!
//! Owns: the caller, scopes, token verification and key fetching, the
//! service's own token, the `AUTH_*` settings ([`AuthConfig`]) and the
//! `auth_key_fetches` metric. Must not know: routes or business rules
//! (services name their scopes), quotas, databases or events.

mod config;
pub use config::{AuthConfig, ClientCredentials, ExtraRoots, JWKS_REFRESH_FLOOR_MS};

pub mod client;
pub mod http;
pub mod jwt;
pub mod keys;
mod service_token;

use std::fmt;
use std::future::{Ready, ready};
use std::marker::PhantomData;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};

pub use jwt::{Claims, TokenError};
pub use service_token::ServiceToken;

use shared_http::metrics::Registry;
use shared_http::paths;
use shared_http::problem::{Problem, RETRY_SOON};

/// A scope a route needs, named by a type so that a route's signature says
/// it: `_: Authorized<WriteCatalogue>`.
pub trait Scope {
    /// The scope as tokens carry it (`inventory:write`).
    const NAME: &'static str;
}

/// The verification settings and verifier of one service, shared by its workers.
pub struct Authenticator {
    verifier: Option<jwt::Verifier>,
    required: bool,
}

impl Authenticator {
    /// The verifier of `config`, its key fetches counted in `registry`.
    pub fn new(config: &AuthConfig, registry: &mut Registry) -> Self {
        let verifier = jwt::Verifier::new(config);
        if let Some(verifier) = &verifier {
            verifier.register_metrics(registry);
        }
        Self {
            verifier,
            required: config.required,
        }
    }

    /// Keeps the signing keys fresh in the background until `draining` says
    /// stop ([`jwt::Verifier::keep_fresh`]); returns at once with auth off.
    pub async fn keep_keys_fresh(&self, draining: impl Fn() -> bool) {
        if let Some(verifier) = &self.verifier {
            verifier.keep_fresh(draining).await;
        }
    }

    /// Who sent `req`: see the module documentation.
    async fn identify(&self, req: &ServiceRequest) -> Result<Caller, AuthError> {
        let service = req.app_data::<web::Data<ServiceToken>>();
        let rules = Rules {
            required: self.required,
            verifying: self.verifier.is_some(),
            service_grants: service.map_or(&[], |token| token.grants()),
        };
        let who = match bearer_token(req.request()) {
            Some(token) if service.is_some_and(|s| s.accepts(token)) => Who::Service,
            Some(token) => match &self.verifier {
                Some(verifier) => Who::Bearer(verifier.verify(token).await?),
                None => Who::Anonymous,
            },
            None => Who::Anonymous,
        };
        Ok(Caller { who, rules })
    }
}

/// The token of an `Authorization: Bearer …` header (RFC 6750 §2.1; the
/// scheme is case-insensitive). Other schemes (identity's Basic) are not ours.
fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// What is enforced on anonymous callers.
#[derive(Clone, Copy, Debug)]
struct Rules {
    /// `AUTH_REQUIRED`: anonymous callers need a subject (customer routes).
    required: bool,
    /// Whether signed tokens are verified (`AUTH_ISSUER` set): anonymous
    /// callers then hold no scope.
    verifying: bool,
    service_grants: &'static [&'static str],
}

#[derive(Clone, Debug)]
enum Who {
    Anonymous,
    Service,
    Bearer(Arc<Claims>),
}

/// The caller of the current request, as [`middleware`] found it.
#[derive(Clone, Debug)]
pub struct Caller {
    who: Who,
    rules: Rules,
}

impl Caller {
    /// The token's subject, for a caller with a verified token.
    pub fn subject(&self) -> Option<&str> {
        match &self.who {
            Who::Bearer(claims) => Some(&claims.subject),
            Who::Anonymous | Who::Service => None,
        }
    }

    /// When the caller's token expires (`exp`, seconds since the epoch), for
    /// a caller with a verified token.
    pub fn expires_at(&self) -> Option<u64> {
        match &self.who {
            Who::Bearer(claims) => Some(claims.expires_at),
            Who::Anonymous | Who::Service => None,
        }
    }

    /// Whether the caller holds `scope` (an anonymous caller holds none).
    pub fn has_scope(&self, scope: &str) -> bool {
        match &self.who {
            Who::Bearer(claims) => claims.has_scope(scope),
            Who::Service => self.rules.service_grants.contains(&scope),
            Who::Anonymous => false,
        }
    }

    /// Passes a caller holding `scope`, and an anonymous one only where no
    /// one could hold it: no signed tokens are verified and no service token
    /// grants it. `AUTH_REQUIRED` plays no part (fail closed, see the module).
    ///
    /// # Errors
    /// 401 for an anonymous caller where a token could be presented, 403 for
    /// a token without the scope.
    pub fn require_scope(&self, scope: &'static str) -> Result<(), AuthError> {
        let rules = &self.rules;
        match &self.who {
            _ if self.has_scope(scope) => Ok(()),
            Who::Anonymous if rules.verifying || rules.service_grants.contains(&scope) => {
                Err(AuthError::Missing)
            }
            Who::Anonymous => Ok(()),
            Who::Service | Who::Bearer(_) => Err(AuthError::Forbidden { scope }),
        }
    }

    /// The subject the request acts for: `Some` for a verified token, `None`
    /// for an anonymous caller where nothing is enforced. A service token
    /// names no subject and counts as anonymous here.
    ///
    /// # Errors
    /// 401 when tokens are required and none (or a service token) was sent.
    pub fn require_subject(&self) -> Result<Option<&str>, AuthError> {
        match &self.who {
            Who::Bearer(claims) => Ok(Some(&claims.subject)),
            Who::Anonymous | Who::Service if self.rules.required => Err(AuthError::Missing),
            Who::Anonymous | Who::Service => Ok(None),
        }
    }

    /// Who to record as having made a change.
    pub fn actor(&self) -> Actor {
        match &self.who {
            Who::Bearer(claims) => Actor(claims.subject.clone()),
            Who::Service => Actor("service".into()),
            Who::Anonymous => Actor("anonymous".into()),
        }
    }
}

/// The caller [`middleware`] left in the request (anonymous on routes it skips).
impl FromRequest for Caller {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = req.extensions().get::<Caller>().cloned();
        ready(Ok(found.unwrap_or_else(|| {
            let auth = req.app_data::<web::Data<Authenticator>>();
            Caller {
                who: Who::Anonymous,
                rules: Rules {
                    required: auth.is_some_and(|auth| auth.required),
                    verifying: auth.is_some_and(|auth| auth.verifier.is_some()),
                    service_grants: &[],
                },
            }
        })))
    }
}

/// A caller that passed [`Caller::require_scope`] for `S`.
pub struct Authorized<S: Scope> {
    pub caller: Caller,
    scope: PhantomData<S>,
}

impl<S: Scope> FromRequest for Authorized<S> {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let result = Caller::from_request(req, payload)
            .into_inner()
            .and_then(|caller| {
                caller.require_scope(S::NAME)?;
                Ok(Self {
                    caller,
                    scope: PhantomData,
                })
            });
        ready(result)
    }
}

/// The subject (or "service", "anonymous") recorded beside a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(String);

impl Actor {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A request refused for who sent it.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("this request needs a bearer token")]
    Missing,
    #[error(transparent)]
    Invalid(#[from] TokenError),
    #[error("the token lacks the scope {scope}")]
    Forbidden { scope: &'static str },
}

impl AuthError {
    /// The problem answer, with `WWW-Authenticate` as RFC 6750 §3 describes.
    pub fn to_problem(&self) -> Problem {
        let detail = self.to_string();
        match self {
            Self::Missing => unauthorized(detail, "Bearer".into()),
            Self::Invalid(TokenError::KeysUnavailable) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "auth_unavailable",
                "Service Unavailable",
            )
            .detail(detail)
            .retry_after(RETRY_SOON),
            Self::Invalid(_) => unauthorized(
                detail.clone(),
                format!(r#"Bearer error="invalid_token", error_description="{detail}""#),
            ),
            Self::Forbidden { scope } => {
                Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden")
                    .detail(detail)
                    .with("scope", scope)
                    .header(
                        header::WWW_AUTHENTICATE,
                        format!(r#"Bearer error="insufficient_scope", scope="{scope}""#),
                    )
            }
        }
    }
}

fn unauthorized(detail: String, challenge: String) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
        .detail(detail)
        .header(header::WWW_AUTHENTICATE, challenge)
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        self.to_problem().status()
    }

    fn error_response(&self) -> HttpResponse {
        self.to_problem().to_response()
    }
}

/// Identifies the caller of every request but the plumbing's and CORS
/// preflights; a bad token is answered here (401), before any handler runs.
///
/// # Errors
/// Passes on the inner service's error unchanged.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> actix_web::Result<ServiceResponse<EitherBody<impl MessageBody>>> {
    let skip = paths::is_plumbing(req.path()) || req.method() == Method::OPTIONS;
    let authenticator = req.app_data::<web::Data<Authenticator>>().cloned();
    if let (false, Some(authenticator)) = (skip, authenticator) {
        match authenticator.identify(&req).await {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
            }
            Err(refused) => {
                let response = refused.to_problem().to_response();
                return Ok(req.into_response(response).map_into_right_body());
            }
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A caller of a service with auth required (which implies an issuer)
    /// or off, and `service_grants`.
    fn caller(who: Who, required: bool, service_grants: &'static [&'static str]) -> Caller {
        Caller {
            who,
            rules: Rules {
                required,
                verifying: required,
                service_grants,
            },
        }
    }

    /// Auth on (`AUTH_ISSUER` set) but `AUTH_REQUIRED` false.
    fn optional(who: Who) -> Caller {
        Caller {
            who,
            rules: Rules {
                required: false,
                verifying: true,
                service_grants: &[],
            },
        }
    }

    #[test]
    fn optional_auth_fails_closed_on_scopes_but_serves_anonymous_customers() {
        assert!(matches!(
            optional(Who::Anonymous).require_scope("x:w"),
            Err(AuthError::Missing)
        ));
        assert_eq!(optional(Who::Anonymous).require_subject().ok(), Some(None));
        assert!(matches!(
            optional(bearer(&["y:w"])).require_scope("x:w"),
            Err(AuthError::Forbidden { scope: "x:w" })
        ));
        assert!(optional(bearer(&["x:w"])).require_scope("x:w").is_ok());
        assert!(
            caller(Who::Service, true, &["x:w"])
                .require_subject()
                .is_err(),
            "a service token names no customer where one is required"
        );
    }

    fn bearer(scopes: &[&str]) -> Who {
        Who::Bearer(Arc::new(Claims {
            subject: "c1".into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            expires_at: u64::MAX,
        }))
    }

    #[test]
    fn anonymous_callers_pass_only_where_nothing_is_enforced() {
        assert!(
            caller(Who::Anonymous, false, &[])
                .require_scope("x:w")
                .is_ok()
        );
        assert!(matches!(
            caller(Who::Anonymous, true, &[]).require_scope("x:w"),
            Err(AuthError::Missing)
        ));
        // A service token guarding the scope makes it enforced, as before tokens.
        assert!(matches!(
            caller(Who::Anonymous, false, &["x:w"]).require_scope("x:w"),
            Err(AuthError::Missing)
        ));
        assert!(
            caller(Who::Anonymous, false, &["x:w"])
                .require_scope("y:w")
                .is_ok()
        );
        assert_eq!(
            caller(Who::Anonymous, false, &[]).require_subject().ok(),
            Some(None)
        );
        assert!(caller(Who::Anonymous, true, &[]).require_subject().is_err());
    }

    #[test]
    fn tokens_pass_with_their_scopes_only() {
        let holder = caller(bearer(&["x:w"]), false, &[]);
        assert!(holder.require_scope("x:w").is_ok());
        assert!(matches!(
            holder.require_scope("y:w"),
            Err(AuthError::Forbidden { scope: "y:w" })
        ));
        assert_eq!(holder.require_subject().ok(), Some(Some("c1")));
        assert_eq!(holder.actor().as_str(), "c1");

        let service = caller(Who::Service, true, &["x:w"]);
        assert!(service.require_scope("x:w").is_ok());
        assert!(service.require_scope("y:w").is_err());
        assert_eq!(service.actor().as_str(), "service");
    }

    #[test]
    fn refusals_carry_rfc_6750_challenges() {
        let missing = AuthError::Missing.to_problem();
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
        let response = missing.to_response();
        let challenge = |r: &HttpResponse| {
            r.headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(challenge(&response), "Bearer");

        let expired = AuthError::Invalid(TokenError::Expired)
            .to_problem()
            .to_response();
        let challenge = challenge(&expired);
        assert!(
            challenge.starts_with(r#"Bearer error="invalid_token""#),
            "{challenge}"
        );

        let forbidden = AuthError::Forbidden { scope: "x:w" }.to_problem();
        assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
        assert_eq!(forbidden.code(), "forbidden");
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_other_schemes_are_ignored() {
        use actix_web::test::TestRequest;
        for (value, expected) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("Basic YTpi", None),
            ("Bearer ", None),
            ("Bearer", None),
        ] {
            let req = TestRequest::default()
                .insert_header((header::AUTHORIZATION, value))
                .to_http_request();
            assert_eq!(bearer_token(&req), expected, "{value}");
        }
    }
}
