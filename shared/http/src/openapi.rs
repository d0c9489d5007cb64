//! The API description every service serves at `GET /openapi.json` (OpenAPI 3.1).
//!
//! It is generated from the code, so it cannot drift from what is served:
//!
//! - Each handler carries its `#[utoipa::path(...)]` next to its actix route
//!   attribute (`#[get("/items/{sku}")]`), and a service's `routes` function
//!   registers handlers on an [`ApiConfig`]: `cfg.service(handler)` adds the
//!   route *and* its description in the same call. Request and response types
//!   derive `ToSchema`, the same types the handlers (de)serialize.
//! - [`describe`] then adds what the shared plumbing serves and answers for
//!   every service: `GET /metrics` and `GET /openapi.json` (the health paths are
//!   registered like a service's own, by [`crate::health::routes`]); the
//!   `Problem` schema; and on each operation the problem responses the
//!   framework gives (400/413/415 for a JSON body, 400 for a query string, 401
//!   behind the `SERVICE_TOKEN` check (`shared_auth::ServiceToken`), 401, 403
//!   and 503 behind a signed-token check (`shared_auth`), 500 and the fault
//!   injection's 503, the deadline's 400 and 504 ([`crate::deadline`])).
//! - [`serve`] renders the document once per worker, serves it, and gives
//!   [`crate::problem::not_found`] the table of methods per path that its 405
//!   answers put in `Allow`.

use std::collections::btree_map::Entry;

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, ParameterIn, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{
    Components, ContentBuilder, InfoBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder,
};
use utoipa::{PartialSchema, ToSchema};

use crate::paths;
use crate::problem::{AllowedMethods, ProblemDetails};
use crate::service::ServiceInfo;

pub use utoipa_actix_web::scope;

/// What a service's `routes` function registers on. Like `web::ServiceConfig`,
/// except that `service(handler)` also adds the handler's `#[utoipa::path]` to
/// the description; use [`scope`] for scopes, for the same reason.
pub type ApiConfig<'a> = utoipa_actix_web::service_config::ServiceConfig<'a>;

/// The media type of problem responses, for `content_type = PROBLEM_JSON`.
pub const PROBLEM_JSON: &str = crate::problem::CONTENT_TYPE;

/// The security scheme of routes behind the `SERVICE_TOKEN` check (`shared_auth::ServiceToken`):
/// `security(("service_token" = []))` in their `#[utoipa::path]`.
pub const SERVICE_TOKEN: &str = "service_token";

/// The security scheme of routes that take a provider's signed token
/// (`shared_auth::jwt::Verifier`, `AUTH_ISSUER`): `security(("bearer_token" = []))`.
/// A route either scheme opens lists both as separate requirements:
/// `security(("service_token" = []), ("bearer_token" = []))`.
pub const BEARER_TOKEN: &str = "bearer_token";

const DESCRIPTION: &str = "\
JSON in and out. Every error is `application/problem+json` (RFC 9457) with a stable \
snake_case `code`; branch on it. Every response carries `X-Request-Id` (the caller's, \
when it sent a sane one, else a new one), which problem bodies repeat as `request_id`. \
Money is a decimal number with at most two places, beside its `currency`. A caller may send \
`X-Request-Timeout-Ms` (whole milliseconds it will wait): work not started by then is not \
started, and the answer is 504 `deadline_exceeded`.";

/// Completes the description collected from a service's routes: title and
/// version, the plumbing's own paths and schemas, and the framework's problem
/// responses on every operation.
pub fn describe(info: &ServiceInfo, mut api: OpenApi) -> OpenApi {
    api.info = InfoBuilder::new()
        .title(info.name)
        .version(info.version)
        .description(Some(DESCRIPTION))
        .build();
    api.paths
        .paths
        .insert(paths::METRICS.into(), metrics_path_item());
    api.paths
        .paths
        .insert(paths::OPENAPI.into(), openapi_path_item());

    let (mut uses_service_token, mut uses_bearer_token) = (false, false);
    for (path, item) in &mut api.paths.paths {
        // Fault injection leaves the plumbing's paths alone (see `shared_chaos`).
        let exempt_from_chaos = paths::is_exempt_from_chaos(path);
        for operation in operations_mut(item) {
            uses_service_token |= names_scheme(operation, SERVICE_TOKEN);
            uses_bearer_token |= names_scheme(operation, BEARER_TOKEN);
            add_framework_responses(operation, exempt_from_chaos);
        }
    }

    let components = api.components.get_or_insert_with(Components::new);
    let mut schemas = vec![(
        ProblemDetails::name().into_owned(),
        ProblemDetails::schema(),
    )];
    ProblemDetails::schemas(&mut schemas);
    components.schemas.extend(schemas);
    if uses_service_token {
        components.add_security_scheme(
            SERVICE_TOKEN,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
    if uses_bearer_token {
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        scheme.description = Some(
            "An access token (JWT, ES256 or RS256) of the provider named by `AUTH_ISSUER`.".into(),
        );
        components.add_security_scheme(BEARER_TOKEN, SecurityScheme::Http(scheme));
    }
    api
}

/// Serves `api` at `GET /openapi.json`, and registers the methods of each of
/// its paths for the `Allow` header of 405 answers.
///
/// # Panics
/// Never: a document of string-keyed maps always serializes.
pub fn serve(api: &OpenApi) -> impl FnOnce(&mut web::ServiceConfig) {
    let json = api
        .to_json()
        .expect("an OpenAPI document always serializes to JSON");
    let rendered = web::Data::new(Rendered(web::Bytes::from(json)));
    let allowed = web::Data::new(allowed_methods(api));
    move |cfg| {
        cfg.app_data(allowed).service(
            web::resource(paths::OPENAPI)
                .app_data(rendered)
                .route(web::get().to(openapi_json)),
        );
    }
}

/// The document, serialized once.
struct Rendered(web::Bytes);

async fn openapi_json(rendered: web::Data<Rendered>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(rendered.0.clone())
}

/// The methods of each documented path, in the order `Allow` lists them.
fn allowed_methods(api: &OpenApi) -> AllowedMethods {
    let table = api
        .paths
        .paths
        .iter()
        .map(|(path, item)| {
            let methods = [
                (&item.get, Method::GET),
                (&item.head, Method::HEAD),
                (&item.post, Method::POST),
                (&item.put, Method::PUT),
                (&item.patch, Method::PATCH),
                (&item.delete, Method::DELETE),
                (&item.options, Method::OPTIONS),
                (&item.trace, Method::TRACE),
            ]
            .into_iter()
            .filter(|(operation, _)| operation.is_some())
            .map(|(_, method)| method)
            .collect();
            (path.clone(), methods)
        })
        .collect();
    AllowedMethods::new(table)
}

/// The schema of an identifier that [`crate::validate::is_identifier`] accepts
/// (1 to `max_len` of `A-Z a-z 0-9 - _ .`), for a service's `ToSchema` impls.
pub fn identifier_schema(
    max_len: usize,
    description: &str,
    example: &str,
) -> RefOr<utoipa::openapi::schema::Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^[A-Za-z0-9._-]{{1,{max_len}}}$")))
        .description(Some(description))
        .examples([serde_json::Value::from(example)])
        .into()
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.head,
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
        &mut item.options,
        &mut item.trace,
        &mut item.query,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Whether one of `operation`'s security requirements names `scheme`.
fn names_scheme(operation: &Operation, scheme: &str) -> bool {
    operation.security.iter().flatten().any(|requirement| {
        serde_json::to_value(requirement).is_ok_and(|value| value.get(scheme).is_some())
    })
}

/// The problems any operation can get from the shared plumbing rather than
/// from its handler.
fn add_framework_responses(operation: &mut Operation, exempt_from_chaos: bool) {
    if operation.request_body.is_some() {
        add_problem(
            operation,
            "400",
            "`malformed_json`: the body is not JSON; `invalid_request`: it does not fit the schema.",
        );
        add_problem(
            operation,
            "413",
            "`payload_too_large`: the body is larger than the limit (`BODY_LIMIT_BYTES`).",
        );
        add_problem(
            operation,
            "415",
            "`unsupported_media_type`: the body was not sent as `Content-Type: application/json`.",
        );
    }
    let has_query = operation
        .parameters
        .iter()
        .flatten()
        .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Query));
    if has_query {
        add_problem(
            operation,
            "400",
            "`invalid_query`: the query string does not fit the parameters' types.",
        );
    }
    add_auth_responses(operation);
    if !exempt_from_chaos {
        add_problem(
            operation,
            "500",
            "`internal_error`: an unexpected failure, logged under the `request_id`; \
             `chaos_injected`: fault injection (`CHAOS_FAILURE_RATE`) is on.",
        );
        add_problem(
            operation,
            "503",
            "`chaos_injected`: fault injection (`CHAOS_FAILURE_RATE`) is on; retry.",
        );
        // The deadline middlewares (`crate::deadline`) leave the same paths alone.
        add_problem(
            operation,
            "400",
            "`invalid_request_timeout`: `X-Request-Timeout-Ms` is not a whole number of milliseconds.",
        );
        add_problem(
            operation,
            "504",
            "`deadline_exceeded`: the deadline the caller sent (`X-Request-Timeout-Ms`) passed before \
             the work could start; nothing was done.",
        );
    }
}

/// The 401 (and for signed tokens 403 and 503) of routes behind a token check.
fn add_auth_responses(operation: &mut Operation) {
    if names_scheme(operation, SERVICE_TOKEN) {
        add_problem(
            operation,
            "401",
            "`unauthorized`: `SERVICE_TOKEN` is set and the request lacks `Authorization: Bearer <SERVICE_TOKEN>`.",
        );
    }
    if names_scheme(operation, BEARER_TOKEN) {
        add_problem(
            operation,
            "401",
            "`unauthorized` (with `WWW-Authenticate: Bearer`): a token is needed and none was sent, \
             or the one sent is bad or expired.",
        );
        add_problem(
            operation,
            "403",
            "`forbidden`: the token lacks the scope this route needs (named in `scope`).",
        );
        add_problem(
            operation,
            "503",
            "`auth_unavailable`: the provider's signing keys cannot be fetched right now; retry.",
        );
    }
}

/// Documents a problem response, or adds `description` to the one the
/// handler documented for the same status.
fn add_problem(operation: &mut Operation, status: &str, description: &str) {
    match operation.responses.responses.entry(status.to_owned()) {
        Entry::Vacant(entry) => {
            entry.insert(RefOr::T(problem_response(description)));
        }
        Entry::Occupied(mut entry) => {
            if let RefOr::T(response) = entry.get_mut() {
                response.description = format!("{} {description}", response.description);
                response
                    .content
                    .entry(PROBLEM_JSON.to_owned())
                    .or_insert_with(|| RefOr::T(problem_content()));
            }
        }
    }
}

fn problem_content() -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(ProblemDetails::name())))
        .build()
}

fn problem_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, problem_content())
        .build()
}

fn metrics_path_item() -> PathItem {
    // The exposition's media type without its parameters (`version`, `charset`).
    let served = crate::metrics::CONTENT_TYPE
        .split(';')
        .next()
        .unwrap_or("text/plain");
    let text = || {
        ContentBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build()
    };
    let mut ok = ResponseBuilder::new()
        .description("The metrics in the Prometheus text exposition format.")
        .content("text/plain", text());
    if served != "text/plain" {
        ok = ok.content(served, text());
    }
    let operation = OperationBuilder::new()
        .operation_id(Some("metrics"))
        .summary(Some("Prometheus metrics of this process"))
        .tag("operations")
        .response("200", ok.build())
        .build();
    PathItem::new(HttpMethod::Get, operation)
}

fn openapi_path_item() -> PathItem {
    let ok = ResponseBuilder::new()
        .description("This document.")
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
                .build(),
        )
        .build();
    let operation = OperationBuilder::new()
        .operation_id(Some("openapi"))
        .summary(Some("This service's API description (OpenAPI 3.1)"))
        .tag("operations")
        .response("200", ok)
        .build();
    PathItem::new(HttpMethod::Get, operation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operation_with_body() -> Operation {
        let mut operation = OperationBuilder::new()
            .response("200", ResponseBuilder::new().description("ok").build())
            .response(
                "400",
                ResponseBuilder::new()
                    .description("`invalid_request`: bad.")
                    .content(PROBLEM_JSON, problem_content())
                    .build(),
            )
            .build();
        operation.request_body = Some(RefOr::T(Default::default()));
        operation
    }

    /// The operation's response statuses, in the order it lists them.
    fn statuses(operation: &Operation) -> Vec<&str> {
        operation
            .responses
            .responses
            .keys()
            .map(String::as_str)
            .collect()
    }

    #[test]
    fn framework_problems_are_added_or_merged() {
        let mut operation = operation_with_body();
        add_framework_responses(&mut operation, false);
        assert_eq!(
            statuses(&operation),
            ["200", "400", "413", "415", "500", "503", "504"]
        );
        let RefOr::T(bad_request) = &operation.responses.responses["400"] else {
            panic!("inline response");
        };
        assert!(
            bad_request
                .description
                .starts_with("`invalid_request`: bad.")
        );
        assert!(bad_request.description.contains("malformed_json"));
    }

    #[test]
    fn probes_get_no_chaos_responses() {
        let mut operation = OperationBuilder::new()
            .response("200", ResponseBuilder::new().description("ok").build())
            .build();
        add_framework_responses(&mut operation, true);
        assert_eq!(operation.responses.responses.len(), 1);
    }

    #[test]
    fn either_token_scheme_documents_its_refusals() {
        use utoipa::openapi::security::SecurityRequirement;
        let mut operation = OperationBuilder::new()
            .response("200", ResponseBuilder::new().description("ok").build())
            .security(SecurityRequirement::new(
                SERVICE_TOKEN,
                Vec::<String>::new(),
            ))
            .security(SecurityRequirement::new(BEARER_TOKEN, Vec::<String>::new()))
            .build();
        assert!(names_scheme(&operation, SERVICE_TOKEN) && names_scheme(&operation, BEARER_TOKEN));
        add_framework_responses(&mut operation, true);
        assert_eq!(statuses(&operation), ["200", "401", "403", "503"]);
        let RefOr::T(unauthorized) = &operation.responses.responses["401"] else {
            panic!("inline response");
        };
        assert!(unauthorized.description.contains("SERVICE_TOKEN"));
        assert!(unauthorized.description.contains("WWW-Authenticate"));
    }

    #[test]
    fn allowed_methods_follow_the_document() {
        let mut api = OpenApi::default();
        let mut item = PathItem::new(HttpMethod::Get, Operation::default());
        item.delete = Some(Operation::default());
        api.paths.paths.insert("/things/{id}".into(), item);
        let allowed = allowed_methods(&api);
        assert_eq!(allowed.get("/things/{id}"), [Method::GET, Method::DELETE]);
        assert!(allowed.get("/other").is_empty());
    }
}
