//! RFC 9457 problem details: every error any service sends looks like this.
//!
//! ```json
//! {"type": "/problems/insufficient_stock", "title": "Not enough stock", "status": 409,
//!  "detail": "…", "code": "insufficient_stock", "request_id": "…", "skus": ["A001"]}
//! ```
//!
//! Services build a [`Problem`] in the single `impl ResponseError` of their
//! error enum. The framework's own rejections (malformed JSON, wrong content
//! type, body too large, unknown path, wrong method) are turned into the same
//! shape here, once, by [`json_config`], [`query_config`], [`not_found`] and
//! [`replace_bare_error`] (wired in by `shared_server`).
//!
//! The standard members are written through [`ProblemDetails`], which is also
//! the `Problem` schema of every service's OpenAPI description, so the two
//! cannot disagree.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::http::header::TryIntoHeaderValue;
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// The media type of every error body.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// The `Retry-After` to send when nothing better is known (a dependency
/// failed, a first request is still at work): the header's smallest unit,
/// which is also short enough that a client's retry is not a burden.
pub const RETRY_SOON: Duration = Duration::from_secs(1);

/// `after` in the whole seconds HTTP headers carry (`Retry-After`, the
/// `RateLimit` reset): rounded up, and at least 1, so that a client told to
/// wait never retries early or at once.
pub fn whole_seconds(after: Duration) -> u64 {
    (after.as_secs() + u64::from(after.subsec_nanos() > 0)).max(1)
}

/// The standard members of a problem body (RFC 9457 plus our `code` and
/// `request_id`). Services add extension members (`skus`, `checks`, …) beside
/// them; the schema allows any.
#[derive(Debug, Serialize, ToSchema)]
#[schema(
    as = Problem,
    example = json!({
        "type": "/problems/not_found",
        "title": "Not Found",
        "status": 404,
        "detail": "No resource at GET /nope.",
        "code": "not_found",
        "request_id": "5f0c6f5e-9a4b-4bb8-9c8e-1f2d3c4b5a69"
    })
)]
pub struct ProblemDetails {
    /// `/problems/{code}`: a URI reference naming the kind of problem.
    #[schema(example = "/problems/not_found")]
    pub r#type: String,
    /// A short summary of the kind of problem, for people.
    pub title: String,
    /// The HTTP status code of the response.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong with this request, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub detail: Option<String>,
    /// Stable and snake_case, for programs: branch on this, not on `title` or `detail`.
    #[schema(pattern = "^[a-z][a-z0-9_]*$", example = "not_found")]
    pub code: String,
    /// The request's `X-Request-Id`, to quote when reporting a problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub request_id: Option<String>,
}

/// The `code` of the problem a response carries, kept in the response's
/// extensions for the layers outside the handler: the metrics count
/// problems by it and the access log names it.
#[derive(Debug, Clone)]
pub struct ProblemCode(pub Cow<'static, str>);

/// The [`ProblemCode`] of `response`, if it carries a problem.
pub fn code_of(response: &HttpResponse<impl MessageBody>) -> Option<ProblemCode> {
    response.extensions().get::<ProblemCode>().cloned()
}

/// An HTTP error with a stable machine-readable `code`.
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    code: Cow<'static, str>,
    title: Cow<'static, str>,
    detail: Option<String>,
    extra: Map<String, Value>,
    retry_after: Option<Duration>,
    headers: Vec<(header::HeaderName, String)>,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        title: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            title: title.into(),
            detail: None,
            extra: Map::new(),
            retry_after: None,
            headers: Vec::new(),
        }
    }

    /// The generic problem for a bare HTTP status (404, 405, …).
    pub fn from_status(status: StatusCode) -> Self {
        let code = match status {
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::TOO_MANY_REQUESTS => "rate_limited",
            StatusCode::SERVICE_UNAVAILABLE => "service_unavailable",
            s if s.is_server_error() => "internal_error",
            _ => "bad_request",
        };
        let title = status.canonical_reason().unwrap_or("Error");
        Self::new(status, code, title)
    }

    /// An opaque 500: the cause is logged, never sent.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal server error",
        )
        .detail("The request failed unexpectedly; quote its request_id when reporting it.")
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds an extension member (e.g. `skus`).
    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.extra.insert(key.to_owned(), value);
        self
    }

    /// Sets the `Retry-After` header (whole seconds, at least 1; see [`RETRY_SOON`]).
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Adds a response header (`WWW-Authenticate`, rate-limit headers).
    pub fn header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &str {
        &self.code
    }

    /// The JSON body, with the current request's id when there is one.
    pub fn body(&self) -> Value {
        let standard = ProblemDetails {
            r#type: format!("/problems/{}", self.code),
            title: self.title.to_string(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_string(),
            request_id: crate::request_id::current(),
        };
        // Extensions go in first so that the standard members always win.
        let mut body = self.extra.clone();
        if let Ok(Value::Object(members)) = serde_json::to_value(standard) {
            body.extend(members);
        }
        Value::Object(body)
    }

    pub fn to_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.content_type(CONTENT_TYPE);
        response
            .extensions_mut()
            .insert(ProblemCode(self.code.clone()));
        if let Some(after) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, whole_seconds(after).to_string()));
        }
        for (name, value) in &self.headers {
            if let Ok(value) = header::HeaderValue::from_str(value) {
                response.append_header((name.clone(), value));
            }
        }
        response.body(self.body().to_string())
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.title, self.code)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        self.to_response()
    }
}

/// JSON bodies: size limit, and a problem for every way a body can be wrong.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req| json_problem(&err).into())
}

fn json_problem(err: &JsonPayloadError) -> Problem {
    match err {
        JsonPayloadError::ContentType => Problem::from_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
            .detail("The request body must be sent as Content-Type: application/json."),
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => {
            Problem::from_status(StatusCode::PAYLOAD_TOO_LARGE).detail(format!(
                "The request body is larger than the limit of {limit} bytes."
            ))
        }
        JsonPayloadError::Deserialize(e) if e.is_data() => Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid request",
        )
        .detail(e.to_string()),
        JsonPayloadError::Deserialize(e) => {
            Problem::new(StatusCode::BAD_REQUEST, "malformed_json", "Malformed JSON")
                .detail(e.to_string())
        }
        other => Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "Unreadable request body",
        )
        .detail(other.to_string()),
    }
}

/// Query strings that do not fit the handler's type.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let detail = match &err {
            QueryPayloadError::Deserialize(e) => e.to_string(),
            other => other.to_string(),
        };
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "Invalid query string",
        )
        .detail(detail)
        .into()
    })
}

/// Path segments that do not fit the handler's type.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req| {
        Problem::new(StatusCode::NOT_FOUND, "not_found", "Not Found")
            .detail(err.to_string())
            .into()
    })
}

/// The methods each route pattern (`/items/{sku}`) answers, registered as app
/// data by the server from the API description; [`not_found`] names them in
/// the `Allow` header of a 405.
#[derive(Debug, Clone, Default)]
pub struct AllowedMethods(BTreeMap<String, Vec<Method>>);

impl AllowedMethods {
    pub fn new(routes: BTreeMap<String, Vec<Method>>) -> Self {
        Self(routes)
    }

    pub fn get(&self, pattern: &str) -> &[Method] {
        self.0.get(pattern).map_or(&[], Vec::as_slice)
    }
}

/// The default service: any request no route took.
///
/// Routes registered with a method (`#[get("/items/{sku}")]`) only match
/// their method, so a request reaches this for a path that exists under
/// other methods too: that is a 405 naming the allowed methods, not a 404.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let Some(pattern) = req.resource_map().match_pattern(req.path()) else {
        return Problem::from_status(StatusCode::NOT_FOUND)
            .detail(format!("No resource at {} {}.", req.method(), req.path()))
            .to_response();
    };
    let allowed = req
        .app_data::<web::Data<AllowedMethods>>()
        .map(|table| table.get(&pattern).to_vec())
        .unwrap_or_default();
    let mut response = Problem::from_status(StatusCode::METHOD_NOT_ALLOWED)
        .detail(format!(
            "{} is not supported on {}.",
            req.method(),
            req.path()
        ))
        .to_response();
    // Method names are tokens, so the header value always builds.
    if !allowed.is_empty()
        && let Ok(value) = header::Allow(allowed).try_into_value()
    {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// A resource answering every method with [`not_found`]'s 405, for a literal
/// path that a templated one would otherwise take. Registered after
/// `POST /things/search` and before `GET /things/{id}`, it keeps
/// `GET /things/search` a 405 rather than a lookup of the id "search".
pub fn other_methods_not_allowed(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(not_found))
}

/// Marks an error response whose body a standard other than RFC 9457 fixes
/// (OAuth's `{"error": …}`, RFC 6749 §5.2), so that [`replace_bare_error`]
/// leaves it as it is.
#[derive(Debug, Clone, Copy)]
pub struct KeepErrorBody;

/// Marks `response` with [`KeepErrorBody`].
pub fn keep_error_body(response: &mut HttpResponse) {
    response.extensions_mut().insert(KeepErrorBody);
}

/// Error-handler hook: an error response that is not already a problem (the
/// router's bare 405, a middleware's plain-text rejection) gets the problem
/// body for its status. Problems built by the services pass through untouched.
///
/// # Errors
/// Never; the signature is the one `ErrorHandlers` expects.
pub fn replace_bare_error<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(CONTENT_TYPE.as_bytes()));
    let kept = res.response().extensions().get::<KeepErrorBody>().is_some();
    if is_problem || kept {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let (req, original) = res.into_parts();
    let status = original.status();
    let mut problem = Problem::from_status(status);
    if status == StatusCode::METHOD_NOT_ALLOWED {
        problem = problem.detail(format!(
            "{} is not supported on {}.",
            req.method(),
            req.path()
        ));
    }
    let mut replacement = problem.to_response();
    for (name, value) in original.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            replacement
                .headers_mut()
                .insert(name.clone(), value.clone());
        }
    }
    let res = ServiceResponse::new(req, replacement).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_carries_code_status_and_extensions() {
        let problem = Problem::new(
            StatusCode::CONFLICT,
            "insufficient_stock",
            "Not enough stock",
        )
        .detail("A001 has 1 left")
        .with("skus", ["A001"]);
        let body = problem.body();
        assert_eq!(body["type"], "/problems/insufficient_stock");
        assert_eq!(body["status"], 409);
        assert_eq!(body["code"], "insufficient_stock");
        assert_eq!(body["detail"], "A001 has 1 left");
        assert_eq!(body["skus"][0], "A001");
    }

    #[test]
    fn standard_members_win_over_extensions_of_the_same_name() {
        let body = Problem::from_status(StatusCode::NOT_FOUND)
            .with("status", 200)
            .with("code", "other")
            .body();
        assert_eq!(body["status"], 404);
        assert_eq!(body["code"], "not_found");
        assert!(body.get("detail").is_none(), "absent, not null: {body}");
    }

    #[test]
    fn retry_after_is_rounded_up_to_whole_seconds() {
        let response = Problem::from_status(StatusCode::SERVICE_UNAVAILABLE)
            .retry_after(Duration::from_millis(1500))
            .to_response();
        assert_eq!(
            response.headers().get(header::RETRY_AFTER).expect("set"),
            "2"
        );
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).expect("set"),
            CONTENT_TYPE
        );
    }
}
