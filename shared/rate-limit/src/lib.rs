//! Per-caller request quotas, off unless configured (`RATE_LIMIT_*`).
//!
//! Every request falls in one class: reads (GET, HEAD), writes (the other
//! methods), or sign-in (a write to a route the service names in
//! [`SignInRoutes`]). Each class with a quota has one keyed GCRA limiter
//! (`governor`): `n` requests per minute per caller, with a burst of `n`, one
//! request's worth coming back every `60/n` seconds. OPTIONS preflights and
//! the plumbing paths ([`paths::is_plumbing`]) are never limited, so probes,
//! scrapes and CORS keep working whoever is over quota.
//!
//! The caller is the token's subject when the request carries a verified one,
//! else the client address (see [`client_address`]: `X-Forwarded-For` is
//! believed only from `TRUSTED_PROXIES`). Sign-in requests are anonymous by
//! nature and always go by address.
//!
//! Past the quota the answer is 429 problem+json `rate_limited` with
//! `Retry-After`. Every answer in a limited class carries the headers of
//! draft-ietf-httpapi-ratelimit-headers-10 (structured fields):
//!
//! ```text
//! RateLimit-Policy: "reads";q=600;w=60
//! RateLimit: "reads";r=599;t=1
//! ```
//!
//! `q` is the quota and `w` the window in seconds; `r` is what is left and
//! `t` the seconds until the next request's worth comes back (GCRA refills
//! one unit at a time, not the whole window at once: on a 429 this is exact
//! and equals `Retry-After`; otherwise it is the refill interval, an upper
//! bound).
//!
//! State is one small entry per caller seen; [`spawn_pruning`] drops the
//! entries of callers whose quota is whole again, so memory follows the
//! number of recent callers, not of all callers ever.
//!
//! Owns: the quotas, the `RateLimit` headers, the 429, the `RATE_LIMIT_*` and
//! `TRUSTED_PROXIES` settings ([`RateLimitConfig`]) and the
//! `http_requests_rate_limited` metric. Must not know: which routes a service
//! has (it is told its sign-in routes), databases or events.

mod config;
pub use config::RateLimitConfig;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, web};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use ipnet::IpNet;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use shared_http::health::Lifecycle;
use shared_http::metrics::Registry;
use shared_http::paths;
use shared_http::periodic;
use shared_http::problem::{Problem, whole_seconds};

/// The rate limiter's metrics (counters gain `_total` on the wire).
pub mod names {
    pub const HTTP_REQUESTS_RATE_LIMITED: &str = "http_requests_rate_limited";
}

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-10, section 3).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10, section 4).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// How often the state of callers whose quota is whole again is dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The window every quota is expressed over.
const WINDOW: Duration = Duration::from_secs(60);

/// Which quota a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Reads,
    Writes,
    SignIn,
}

impl Class {
    /// The policy name in the headers and the `class` label of the metric.
    pub fn name(self) -> &'static str {
        match self {
            Self::Reads => "reads",
            Self::Writes => "writes",
            Self::SignIn => "sign_in",
        }
    }
}

/// Whose quota a request spends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// A verified token's `sub`.
    Subject(String),
    /// The client address, when there is no verified caller.
    Address(IpAddr),
}

/// The routes (method and route template, e.g. `POST /sessions`) that count
/// against the sign-in quota, keyed by address, instead of the writes quota.
///
/// A service registers it as app data in its routes (`cfg.app_data(..)`).
/// It is a list rather than a middleware around those routes because a
/// route's own middleware runs after this one has already charged the
/// request to the writes quota.
#[derive(Debug, Clone, Default)]
pub struct SignInRoutes(BTreeSet<(String, String)>);

impl SignInRoutes {
    pub fn new<'a>(routes: impl IntoIterator<Item = (Method, &'a str)>) -> Self {
        Self(
            routes
                .into_iter()
                .map(|(method, pattern)| (method.to_string(), pattern.to_owned()))
                .collect(),
        )
    }

    fn contains(&self, method: &Method, pattern: &str) -> bool {
        self.0.contains(&(method.to_string(), pattern.to_owned()))
    }
}

/// The label of the rejection counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    class: &'static str,
}

type Keyed =
    RateLimiter<Key, DefaultKeyedStateStore<Key>, DefaultClock, StateInformationMiddleware>;

/// One class's quota and the per-caller state behind it.
struct Limiter {
    class: Class,
    per_minute: NonZeroU32,
    keyed: Keyed,
}

/// What the limiter said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Allowed { remaining: u32, reset: Duration },
    Limited { retry_after: Duration },
}

impl Limiter {
    fn new(class: Class, per_minute: NonZeroU32) -> Self {
        Self {
            class,
            per_minute,
            keyed: RateLimiter::keyed(Quota::per_minute(per_minute))
                .with_middleware::<StateInformationMiddleware>(),
        }
    }

    fn check(&self, key: &Key) -> Verdict {
        match self.keyed.check_key(key) {
            Ok(state) => Verdict::Allowed {
                remaining: state.remaining_burst_capacity(),
                reset: WINDOW / self.per_minute.get(),
            },
            Err(not_until) => Verdict::Limited {
                retry_after: not_until.wait_time_from(self.keyed.clock().now()),
            },
        }
    }

    /// `RateLimit-Policy` and `RateLimit` for `verdict`.
    fn headers(&self, verdict: Verdict) -> [(HeaderName, String); 2] {
        let name = self.class.name();
        let (remaining, reset) = match verdict {
            Verdict::Allowed { remaining, reset } => (remaining, reset),
            Verdict::Limited { retry_after } => (0, retry_after),
        };
        [
            (
                RATELIMIT_POLICY,
                format!("\"{name}\";q={};w={}", self.per_minute, WINDOW.as_secs()),
            ),
            (
                RATELIMIT,
                format!("\"{name}\";r={remaining};t={}", whole_seconds(reset)),
            ),
        ]
    }
}

/// The limiters of every class with a quota, shared by all workers.
pub struct RateLimits {
    reads: Option<Limiter>,
    writes: Option<Limiter>,
    sign_in: Option<Limiter>,
    trusted_proxies: Vec<IpNet>,
    rejected: Family<ClassLabels, Counter>,
}

impl RateLimits {
    /// The limiters `config` asks for, and the rejection counter in `registry`.
    pub fn new(config: &RateLimitConfig, registry: &mut Registry) -> Self {
        let rejected = Family::default();
        registry.register(
            names::HTTP_REQUESTS_RATE_LIMITED,
            "HTTP requests answered 429 because the caller was over quota, by class",
            rejected.clone(),
        );
        let limiter = |class, quota: Option<NonZeroU32>| quota.map(|n| Limiter::new(class, n));
        Self {
            reads: limiter(Class::Reads, config.reads_per_min),
            writes: limiter(Class::Writes, config.writes_per_min),
            sign_in: limiter(Class::SignIn, config.sign_in_per_min),
            trusted_proxies: config.trusted_proxies.clone(),
            rejected,
        }
    }

    fn limiters(&self) -> impl Iterator<Item = &Limiter> {
        [&self.reads, &self.writes, &self.sign_in]
            .into_iter()
            .flatten()
    }

    pub fn is_off(&self) -> bool {
        self.limiters().next().is_none()
    }

    /// Forgets callers whose quota is whole again, and gives the memory back.
    pub fn prune(&self) {
        for limiter in self.limiters() {
            limiter.keyed.retain_recent();
            limiter.keyed.shrink_to_fit();
        }
    }

    fn limiter(&self, class: Class) -> Option<&Limiter> {
        match class {
            Class::Reads => self.reads.as_ref(),
            Class::Writes => self.writes.as_ref(),
            Class::SignIn => self.sign_in.as_ref(),
        }
    }

    /// The limiter and key `req` is charged to; `None` when it is not limited.
    fn applicable(&self, req: &ServiceRequest) -> Option<(&Limiter, Key)> {
        if req.method() == Method::OPTIONS || paths::is_plumbing(req.path()) {
            return None;
        }
        let class = class_of(req);
        let limiter = self.limiter(class)?;
        let key = if class == Class::SignIn {
            self.address_of(req.request())?
        } else {
            self.caller_of(req.request())?
        };
        Some((limiter, key))
    }

    /// Who `req` is for per-caller limits (these quotas, the live feed's
    /// streams): its verified token's subject, else its client address.
    /// `None` for a request without a peer (an in-process test request):
    /// requests on a real socket always have one.
    pub fn caller_of(&self, req: &HttpRequest) -> Option<Key> {
        match subject_of(req) {
            Some(subject) => Some(Key::Subject(subject)),
            None => self.address_of(req),
        }
    }

    fn address_of(&self, req: &HttpRequest) -> Option<Key> {
        Some(Key::Address(client_address(
            req.peer_addr()?.ip(),
            forwarded_for(req.headers()),
            &self.trusted_proxies,
        )))
    }
}

fn class_of(req: &ServiceRequest) -> Class {
    let method = req.method();
    if method == Method::GET || method == Method::HEAD {
        return Class::Reads;
    }
    // The route template is known before routing: the app's resource map
    // resolves it from the path.
    let sign_in = req
        .app_data::<web::Data<SignInRoutes>>()
        .is_some_and(|routes| {
            req.match_pattern()
                .is_some_and(|pattern| routes.contains(method, &pattern))
        });
    if sign_in {
        Class::SignIn
    } else {
        Class::Writes
    }
}

/// The verified caller of `req`, if any.
fn subject_of(req: &HttpRequest) -> Option<String> {
    // `shared_auth::middleware` runs first and leaves the caller it verified.
    let extensions = req.extensions();
    let caller = extensions.get::<shared_auth::Caller>()?;
    caller.subject().map(str::to_owned)
}

/// The `X-Forwarded-For` hops of `headers`, left to right across repeated
/// headers; a value that is not text is one malformed hop.
fn forwarded_for(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(header::X_FORWARDED_FOR)
        .flat_map(|value| value.to_str().unwrap_or("\u{0}").split(','))
        .collect()
}

/// One `X-Forwarded-For` hop: an address, possibly bracketed or with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
        .map(|ip| ip.to_canonical())
}

/// The address a request is charged to.
///
/// The TCP peer, unless it is a trusted proxy: then the right-most
/// `X-Forwarded-For` hop that is not itself a trusted proxy. Each proxy
/// appends the address it was called from, so the hops right of the first
/// untrusted one were written by our proxies; everything left of it was
/// written by the client and is never believed (the left-most hop is
/// whatever the client chose to send). A malformed hop stops the walk at the
/// last address known good.
pub fn client_address(peer: IpAddr, hops: Vec<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer.to_canonical();
    for hop in hops.iter().rev() {
        if !is_trusted(&client) {
            break;
        }
        match parse_hop(hop) {
            Some(ip) => client = ip,
            None => break,
        }
    }
    client
}

/// Middleware: charges each request to its class's quota, answers 429 past
/// it, and adds the `RateLimit` headers to every answer of a limited class.
/// Reads [`RateLimits`] from app data (none: nothing is limited).
///
/// # Errors
/// Passes on the inner service's error unchanged.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> actix_web::Result<ServiceResponse<EitherBody<impl MessageBody>>> {
    let limits = req.app_data::<web::Data<RateLimits>>().cloned();
    let Some((limiter, key)) = limits.as_deref().and_then(|l| l.applicable(&req)) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let verdict = limiter.check(&key);
    let headers = limiter.headers(verdict);
    let class = limiter.class;
    let res = match verdict {
        Verdict::Allowed { .. } => next.call(req).await?.map_into_left_body(),
        Verdict::Limited { retry_after } => {
            if let Some(limits) = &limits {
                limits
                    .rejected
                    .get_or_create(&ClassLabels {
                        class: class.name(),
                    })
                    .inc();
            }
            let problem = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too Many Requests",
            )
            .detail(format!(
                "Over the {} quota; retry after the time in Retry-After.",
                class.name()
            ))
            .retry_after(retry_after);
            req.into_response(problem.to_response())
                .map_into_right_body()
        }
    };
    Ok(with_headers(res, headers))
}

fn with_headers<B>(
    mut res: ServiceResponse<B>,
    headers: [(HeaderName, String); 2],
) -> ServiceResponse<B> {
    for (name, value) in headers {
        // Built from names and numbers only: always a valid header value.
        if let Ok(value) = HeaderValue::try_from(value) {
            res.headers_mut().insert(name, value);
        }
    }
    res
}

/// Prunes `limits` every minute until the service drains (nothing to do,
/// and no task, when every quota is off). Call from within the runtime.
pub fn spawn_pruning(limits: web::Data<RateLimits>, lifecycle: Lifecycle) {
    if limits.is_off() {
        return;
    }
    actix_web::rt::spawn(periodic::every(
        "pruning rate-limit state",
        PRUNE_EVERY,
        lifecycle,
        move || {
            limits.prune();
            std::future::ready(Ok(()))
        },
    ));
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter()
            .map(|n| n.parse().expect("test network"))
            .collect()
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        assert_eq!(
            client_address(ip("203.0.113.7"), vec![], &[]),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_address(ip("203.0.113.7"), vec!["198.51.100.1"], &[]),
            ip("203.0.113.7"),
            "an untrusted peer's X-Forwarded-For is ignored"
        );
    }

    #[test]
    fn an_untrusted_peers_forwarded_for_is_ignored_even_with_proxies_configured() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_address(
                ip("203.0.113.7"),
                vec!["10.0.0.5", "198.51.100.1"],
                &trusted
            ),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn a_trusted_proxy_is_believed_for_the_rightmost_untrusted_hop() {
        let trusted = nets(&["10.0.0.0/8", "172.16.0.0/12"]);
        // The client forged "1.1.1.1"; our proxies appended the rest.
        let hops = vec!["1.1.1.1", "198.51.100.9", "172.16.0.3"];
        assert_eq!(
            client_address(ip("10.0.0.2"), hops, &trusted),
            ip("198.51.100.9")
        );
        // Only one proxy: its hop is the client.
        assert_eq!(
            client_address(ip("10.0.0.2"), vec!["1.1.1.1", " 198.51.100.9 "], &trusted),
            ip("198.51.100.9")
        );
        // Nothing forwarded: the proxy itself.
        assert_eq!(
            client_address(ip("10.0.0.2"), vec![], &trusted),
            ip("10.0.0.2")
        );
        // Every hop trusted: the left-most of them.
        assert_eq!(
            client_address(ip("10.0.0.2"), vec!["10.9.9.9", "172.16.0.3"], &trusted),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn ipv6_peers_hops_and_mapped_addresses() {
        let trusted = nets(&["fd00::/8", "10.0.0.0/8"]);
        assert_eq!(
            client_address(ip("fd00::1"), vec!["2001:db8::7"], &trusted),
            ip("2001:db8::7")
        );
        assert_eq!(
            client_address(ip("fd00::1"), vec!["[2001:db8::8]:4711"], &trusted),
            ip("2001:db8::8")
        );
        // An IPv4 proxy seen through a dual-stack socket is still that proxy.
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 2).to_ipv6_mapped());
        assert_eq!(
            client_address(mapped, vec!["198.51.100.9:1234"], &trusted),
            ip("198.51.100.9")
        );
        assert_eq!(
            client_address(
                IpAddr::V6(Ipv6Addr::LOCALHOST),
                vec!["198.51.100.9"],
                &trusted
            ),
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        );
    }

    #[test]
    fn a_malformed_hop_stops_at_the_last_good_address() {
        let trusted = nets(&["10.0.0.0/8"]);
        for bad in ["", "unknown", "999.1.1.1", "\u{0}", "1.2.3.4.5"] {
            assert_eq!(
                client_address(ip("10.0.0.2"), vec!["198.51.100.1", bad], &trusted),
                ip("10.0.0.2"),
                "hop {bad:?}"
            );
        }
        assert_eq!(
            client_address(
                ip("10.0.0.2"),
                vec!["garbage", "10.0.0.3", "198.51.100.1"],
                &trusted
            ),
            ip("198.51.100.1"),
            "garbage left of the client is never read"
        );
    }

    #[test]
    fn repeated_headers_are_one_list() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::X_FORWARDED_FOR,
            HeaderValue::from_static("1.1.1.1, 2.2.2.2"),
        );
        headers.append(header::X_FORWARDED_FOR, HeaderValue::from_static("3.3.3.3"));
        assert_eq!(forwarded_for(&headers), ["1.1.1.1", " 2.2.2.2", "3.3.3.3"]);
    }

    #[test]
    fn headers_follow_the_draft_syntax() {
        let limiter = Limiter::new(Class::Reads, NonZeroU32::new(600).expect("non-zero"));
        let allowed = Verdict::Allowed {
            remaining: 599,
            reset: Duration::from_millis(100),
        };
        let [(policy, policy_value), (state, state_value)] = limiter.headers(allowed);
        assert_eq!(
            (policy, policy_value.as_str()),
            (RATELIMIT_POLICY, "\"reads\";q=600;w=60")
        );
        assert_eq!(
            (state, state_value.as_str()),
            (RATELIMIT, "\"reads\";r=599;t=1")
        );
        let limited = Verdict::Limited {
            retry_after: Duration::from_millis(2100),
        };
        assert_eq!(limiter.headers(limited)[1].1, "\"reads\";r=0;t=3");
    }

    #[test]
    fn a_caller_gets_the_burst_then_is_limited_and_others_are_not() {
        let limiter = Limiter::new(Class::Writes, NonZeroU32::new(2).expect("non-zero"));
        let alice = Key::Subject("alice".into());
        let address = Key::Address(ip("198.51.100.1"));
        assert!(matches!(
            limiter.check(&alice),
            Verdict::Allowed { remaining: 1, .. }
        ));
        assert!(matches!(
            limiter.check(&alice),
            Verdict::Allowed { remaining: 0, .. }
        ));
        let Verdict::Limited { retry_after } = limiter.check(&alice) else {
            panic!("the third write in a minute is over a quota of 2");
        };
        assert!(retry_after <= Duration::from_secs(30), "{retry_after:?}");
        assert!(matches!(
            limiter.check(&address),
            Verdict::Allowed { remaining: 1, .. }
        ));
    }
}
