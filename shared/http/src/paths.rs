//! The paths the shared plumbing serves on every service, named once.
//!
//! Probes and scrapers poll [`HEALTH`], [`LIVE`], [`READY`] and [`METRICS`];
//! [`OPENAPI`] serves the API description. The health routes, the metrics and
//! description routes, the `healthcheck` subcommand and the order service's
//! dependency check all use these constants, and the two rules that treat
//! these paths specially read them through [`is_probe`] (the access log keeps
//! their lines at debug) and [`is_plumbing`] (no tokens are read on them).
//! Fault injection leaves them and [`CHAOS_CONTROL`] alone
//! ([`is_exempt_from_chaos`]), and the API description promises them no
//! injected failures.
//!
//! The Kubernetes manifests and the shell scripts spell the same paths out;
//! `scripts/check-k8s.sh` checks the manifests' probes.

/// `GET /health`: the summary for people and dashboards.
pub const HEALTH: &str = "/health";

/// `GET /health/live`: the liveness probe.
pub const LIVE: &str = "/health/live";

/// `GET /health/ready`: the readiness probe.
pub const READY: &str = "/health/ready";

/// `GET /metrics`: the Prometheus scrape.
pub const METRICS: &str = "/metrics";

/// `GET /openapi.json`: the API description.
pub const OPENAPI: &str = "/openapi.json";

/// `GET` and `PUT /admin/chaos`: live fault control (see `shared_chaos`),
/// registered only with `CHAOS_CONTROL=on`.
pub const CHAOS_CONTROL: &str = "/admin/chaos";

/// Whether `path` is polled by probes or scrapers: everything under
/// [`HEALTH`], and [`METRICS`].
pub fn is_probe(path: &str) -> bool {
    path.starts_with(HEALTH) || path == METRICS
}

/// Whether `path` is served by the plumbing rather than by the service: the
/// probes ([`is_probe`]) and [`OPENAPI`].
pub fn is_plumbing(path: &str) -> bool {
    is_probe(path) || path == OPENAPI
}

/// Whether fault injection leaves `path` alone: the plumbing's paths
/// ([`is_plumbing`]) and [`CHAOS_CONTROL`], so that a drill can always be
/// ended. Unlike the plumbing, the control path is authenticated.
pub fn is_exempt_from_chaos(path: &str) -> bool {
    is_plumbing(path) || path == CHAOS_CONTROL
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_and_the_description_are_plumbing_and_service_paths_are_not() {
        for path in [HEALTH, LIVE, READY, METRICS] {
            assert!(is_probe(path), "{path} is a probe");
            assert!(is_plumbing(path), "{path} is plumbing");
        }
        assert!(!is_probe(OPENAPI), "the description is fetched, not polled");
        assert!(is_plumbing(OPENAPI));
        for path in ["/items", "/orders/1", "/metrics/x", "/"] {
            assert!(!is_plumbing(path), "{path} belongs to the service");
            assert!(!is_exempt_from_chaos(path), "{path} can be faulted");
        }
        assert!(
            !is_plumbing(CHAOS_CONTROL),
            "the control path is authenticated"
        );
        assert!(is_exempt_from_chaos(CHAOS_CONTROL) && is_exempt_from_chaos(LIVE));
    }
}
