//! Where a dependency's endpoints are: a list of base URLs, each host name
//! in it resolved to as many endpoints as it has addresses.
//!
//! - `http://inventory:7001`: the name's A/AAAA records, through the
//!   system's own lookup (as any other connection's). A name with one
//!   address, or only loopback ones (`localhost`), stays one endpoint with
//!   its URL as given, as before; so does an `https` URL (its certificate
//!   names the host, not an address).
//! - `http://_http._tcp.inventory`: a service name (its first label starts
//!   with `_`, and no port) is looked up as SRV records, with the system's
//!   resolver settings (name servers, search domains): one endpoint per
//!   address of each target of the lowest priority, at that record's port.
//!   A Kubernetes headless Service publishes `_<port name>._tcp.<service>`
//!   for each named port. The records of higher priorities are backups and
//!   are not called; weights are not used (the balancer weighs endpoints by
//!   their latency and load instead).
//!
//! A name that does not resolve right now keeps the endpoints it had.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Weak};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;

use super::Balancer;

/// The base URLs of a setting that holds one or a comma-separated list,
/// blanks dropped, without trailing slashes.
pub fn base_urls(list: &str) -> Vec<String> {
    list.split(',')
        .map(|url| url.trim().trim_end_matches('/'))
        .filter(|url| !url.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Why `url` cannot be a dependency's base URL as far as discovery goes:
/// a service name takes its ports from its SRV records.
pub fn refusal(url: &str) -> Option<&'static str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let service = authority.starts_with('_');
    if service && url.starts_with("https://") {
        return Some("a service name (SRV records) is spread over addresses: use http://");
    }
    if service && authority.contains(':') {
        return Some("a service name takes its ports from its SRV records: leave the port out");
    }
    None
}

/// How a host's addresses are found.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Lookup {
    /// A/AAAA records, the port given in the URL (or 80).
    Host(u16),
    /// SRV records, which give the ports too.
    Service,
}

/// A base URL taken apart as far as resolution needs.
struct Target<'a> {
    url: &'a str,
    host: &'a str,
    lookup: Lookup,
    path: &'a str,
}

fn parse(url: &str) -> Option<Target<'_>> {
    // Only plain HTTP is spread over addresses (see the module's comment).
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    if authority.contains('@') || authority.starts_with('[') {
        return None;
    }
    let (host, lookup) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Lookup::Host(port.parse().ok()?)),
        None if authority.starts_with('_') => (authority, Lookup::Service),
        None => (authority, Lookup::Host(80)),
    };
    if host.is_empty() || host.parse::<IpAddr>().is_ok() {
        return None;
    }
    Some(Target {
        url,
        host,
        lookup,
        path,
    })
}

/// Whether any of `urls` names a host to resolve (worth a refresh task).
pub fn has_names(urls: &[String]) -> bool {
    urls.iter().any(|url| parse(url).is_some())
}

/// The resolver that looks up service names (SRV) and their targets.
#[derive(Clone)]
pub struct Dns(Option<TokioResolver>);

impl Dns {
    /// The system's settings (`/etc/resolv.conf`); without them service
    /// names do not resolve (host names still do).
    pub fn system() -> Self {
        match TokioResolver::builder_tokio().and_then(|builder| builder.build()) {
            Ok(resolver) => Self(Some(resolver)),
            Err(e) => {
                tracing::debug!(error = %e, "no resolver settings for SRV lookups");
                Self(None)
            }
        }
    }

    /// The addresses and ports of the lowest-priority targets of the SRV
    /// records of `name`; `None` when there are none now.
    async fn service(&self, name: &str) -> Option<Vec<SocketAddr>> {
        let Some(resolver) = &self.0 else {
            tracing::warn!(
                name,
                "no resolver settings (resolv.conf): a service name cannot be looked up"
            );
            return None;
        };
        let lookup = match resolver.srv_lookup(name).await {
            Ok(lookup) => lookup,
            Err(e) => {
                tracing::warn!(name, error = %e, "could not look up a dependency's SRV records");
                return None;
            }
        };
        let records: Vec<_> = lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::SRV(srv) if !srv.target.is_root() => Some(srv),
                _ => None,
            })
            .collect();
        let first = records.iter().map(|srv| srv.priority).min()?;
        let mut addresses = Vec::new();
        for srv in records.iter().filter(|srv| srv.priority == first) {
            match resolver.lookup_ip(srv.target.clone()).await {
                Ok(ips) => addresses.extend(ips.iter().map(|ip| SocketAddr::new(ip, srv.port))),
                Err(e) => {
                    tracing::warn!(name, target = %srv.target, error = %e, "an SRV target has no address");
                }
            }
        }
        (!addresses.is_empty()).then_some(addresses)
    }
}

/// The addresses of `host` at `port` through the system's lookup.
async fn host_addresses(host: &str, port: u16) -> Option<Vec<SocketAddr>> {
    match tokio::net::lookup_host((host, port)).await {
        Ok(addresses) => Some(addresses.collect()),
        Err(e) => {
            tracing::warn!(host, error = %e, "could not resolve a dependency's host");
            None
        }
    }
}

/// The endpoints of `urls` now; `None` when a name could not be resolved.
pub async fn resolve(urls: &[String], dns: &Dns) -> Option<Vec<String>> {
    let mut endpoints = Vec::new();
    for url in urls {
        let Some(target) = parse(url) else {
            endpoints.push(url.clone());
            continue;
        };
        let found = match target.lookup {
            Lookup::Host(port) => expand(&target, host_addresses(target.host, port).await?),
            Lookup::Service => at_each(&target, dns.service(target.host).await?),
        };
        endpoints.extend(found);
    }
    Some(endpoints)
}

/// One URL per address, or the URL as given (one address, or loopback only).
fn expand(target: &Target<'_>, addresses: Vec<SocketAddr>) -> Vec<String> {
    let loopback_only = addresses.iter().all(|a| a.ip().is_loopback());
    let endpoints = at_each(target, addresses);
    if endpoints.len() <= 1 || loopback_only {
        return vec![target.url.to_owned()];
    }
    endpoints
}

/// One URL per address, in order.
fn at_each(target: &Target<'_>, mut addresses: Vec<SocketAddr>) -> Vec<String> {
    addresses.sort_unstable();
    addresses.dedup();
    addresses
        .iter()
        .map(|address| format!("http://{address}{}", target.path))
        .collect()
}

/// Resolves `urls` now and again every refresh interval of `balancer`, and
/// hands it the endpoints found, for as long as the balancer exists (until
/// the first answer it calls the URLs as given). Does nothing when there is
/// no name to resolve.
pub fn spawn(balancer: &Arc<Balancer>, urls: Vec<String>) {
    spawn_with(balancer, urls, Dns::system);
}

fn spawn_with(balancer: &Arc<Balancer>, urls: Vec<String>, dns: impl FnOnce() -> Dns + 'static) {
    if !has_names(&urls) {
        return;
    }
    let every = balancer.config().refresh;
    let balancer = Arc::downgrade(balancer);
    actix_web::rt::spawn(async move { refresh(balancer, urls, dns(), every).await });
}

async fn refresh(balancer: Weak<Balancer>, urls: Vec<String>, dns: Dns, every: Duration) {
    loop {
        let found = resolve(&urls, &dns).await;
        let Some(alive) = balancer.upgrade() else {
            return;
        };
        if let Some(endpoints) = found {
            alive.set_endpoints(&endpoints);
        }
        drop(alive);
        actix_web::rt::time::sleep(every).await;
    }
}

#[cfg(test)]
#[path = "dns_tests.rs"]
mod dns_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Target<'_> {
        parse(url).expect("a name")
    }

    #[test]
    fn a_list_is_split_on_commas() {
        assert_eq!(
            base_urls(" http://a:1/, http://b:2 ,,"),
            ["http://a:1", "http://b:2"]
        );
        assert_eq!(base_urls("http://a:1"), ["http://a:1"]);
    }

    #[test]
    fn addresses_and_https_are_not_resolved() {
        for url in [
            "http://127.0.0.1:7001",
            "http://[::1]:7001",
            "https://inventory:7001",
            "http://user@inventory:7001",
        ] {
            assert!(parse(url).is_none(), "{url}");
        }
        assert!(has_names(&["http://inventory:7001".to_owned()]));
    }

    #[test]
    fn a_name_with_several_addresses_is_that_many_endpoints() {
        let t = target("http://inventory:7001/api");
        let a: SocketAddr = "10.0.0.2:7001".parse().expect("addr");
        let b: SocketAddr = "10.0.0.1:7001".parse().expect("addr");
        let c: SocketAddr = "[fd00::1]:7001".parse().expect("addr");
        assert_eq!(
            expand(&t, vec![a, b, a, c]),
            [
                "http://10.0.0.1:7001/api",
                "http://10.0.0.2:7001/api",
                "http://[fd00::1]:7001/api"
            ]
        );
    }

    #[test]
    fn one_address_or_loopback_only_keeps_the_url() {
        let t = target("http://localhost:7001");
        let v4: SocketAddr = "127.0.0.1:7001".parse().expect("addr");
        let v6: SocketAddr = "[::1]:7001".parse().expect("addr");
        assert_eq!(expand(&t, vec![v4, v6]), ["http://localhost:7001"]);
        let one: SocketAddr = "10.0.0.1:7001".parse().expect("addr");
        assert_eq!(
            expand(&target("http://inventory"), vec![one]),
            ["http://inventory"]
        );
    }

    #[actix_web::test]
    async fn localhost_resolves_to_itself() {
        let urls = vec![
            "http://localhost:7001".to_owned(),
            "http://127.0.0.1:1".to_owned(),
        ];
        assert_eq!(resolve(&urls, &Dns(None)).await, Some(urls.clone()));
        let unknown = vec!["http://no-such-host.invalid:7001".to_owned()];
        assert_eq!(resolve(&unknown, &Dns(None)).await, None);
    }

    /// A balancer over `urls` whose names are resolved again every `refresh`.
    pub(super) fn refreshing(urls: &[String], refresh: Duration) -> Arc<Balancer> {
        use crate::balancer::BalancerConfig;
        use crate::breaker::{BreakerConfig, SystemClock};
        let config = BalancerConfig {
            refresh,
            ..BalancerConfig::default()
        };
        let breaker = BreakerConfig {
            failure_threshold: 5,
            reset_timeout: Duration::from_secs(30),
        };
        Arc::new(Balancer::new(
            "dep",
            urls.to_vec(),
            config,
            breaker,
            Arc::new(SystemClock),
        ))
    }

    #[actix_web::test]
    async fn a_name_that_stops_resolving_keeps_its_endpoints() {
        let urls = vec!["http://no-such-host.invalid:7001".to_owned()];
        let balancer = refreshing(&urls, Duration::from_millis(5));
        spawn(&balancer, urls.clone());
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        let listed: Vec<String> = balancer.views().into_iter().map(|v| v.url).collect();
        assert_eq!(listed, urls);
        // The task holds the balancer weakly: dropping it ends the refreshes.
        let weak = Arc::downgrade(&balancer);
        drop(balancer);
        assert!(weak.upgrade().is_none());
    }
}
