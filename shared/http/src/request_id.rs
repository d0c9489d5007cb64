//! Request ids: accepted or generated, echoed, and made available.
//!
//! [`middleware`] is the outermost layer of every service. For each request it
//!
//! 1. takes the caller's `X-Request-Id` (when it is a sane token) or makes a new one,
//! 2. makes the id reachable to the layers inside and to handlers through the
//!    [`RequestId`] extractor (the order service forwards it downstream), and
//!    to problem bodies through [`current`],
//! 3. echoes the id on the response.
//!
//! The `request` span that carries the id into every log line is opened just
//! inside, by [`crate::access_log`].

use std::future::{Ready, ready};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest};

/// The header that carries the id, in and out.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static CURRENT: RequestId;
}

/// The id of the request being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// A new random id (a UUID v4), from the thread's generator: `new_v4`
    /// asks the kernel for each one, a system call per request.
    pub fn generate() -> Self {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        Self(id.to_string())
    }

    /// The caller's id when it is 1-128 visible ASCII characters of a safe set,
    /// so that ids can be logged and echoed without escaping.
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = (1..=128).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        ok.then(|| Self(raw.to_owned()))
    }

    /// The id as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Extracts the id that [`middleware`] assigned (or a fresh one if it did not run).
impl FromRequest for RequestId {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let id = req.extensions().get::<RequestId>().cloned();
        ready(Ok(id.unwrap_or_else(RequestId::generate)))
    }
}

/// The id of the request whose task is running, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(|id| id.0.clone()).ok()
}

/// The outermost middleware of every service; see the module docs.
///
/// # Errors
/// Passes on the inner service's error unchanged.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> actix_web::Result<ServiceResponse<impl MessageBody>> {
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(RequestId::parse)
        .unwrap_or_else(RequestId::generate);
    req.extensions_mut().insert(id.clone());
    let mut res = CURRENT.scope(id.clone(), next.call(req)).await?;
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        res.headers_mut().insert(HEADER, value);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_sane_ids_and_rejects_the_rest() {
        for ok in ["abc", "4f1c-9", "trace:span.1_2", &"a".repeat(128)] {
            assert!(RequestId::parse(ok).is_some(), "{ok:?} should be accepted");
        }
        for bad in ["", "has space", "new\nline", "é", &"a".repeat(129)] {
            assert!(
                RequestId::parse(bad).is_none(),
                "{bad:?} should be rejected"
            );
        }
    }
}
