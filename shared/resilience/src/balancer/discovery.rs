//! Where a dependency's endpoints are: a list of base URLs, each host name
//! in it resolved (A/AAAA) to as many endpoints as it has addresses.
//!
//! A name with one address, or only loopback ones (`localhost`), stays one
//! endpoint with its URL as given, as before; so does an `https` URL (its
//! certificate names the host, not an address). A name that does not
//! resolve right now keeps the endpoints it had.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Weak};
use std::time::Duration;

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

/// A base URL taken apart as far as resolution needs.
struct Target<'a> {
    url: &'a str,
    host: &'a str,
    port: u16,
    path: &'a str,
}

fn parse(url: &str) -> Option<Target<'_>> {
    // Only plain HTTP is spread over addresses (see the module's comment).
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    if authority.contains('@') || authority.starts_with('[') {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().ok()?),
        None => (authority, 80),
    };
    if host.is_empty() || host.parse::<IpAddr>().is_ok() {
        return None;
    }
    Some(Target {
        url,
        host,
        port,
        path,
    })
}

/// Whether any of `urls` names a host to resolve (worth a refresh task).
pub fn has_names(urls: &[String]) -> bool {
    urls.iter().any(|url| parse(url).is_some())
}

/// The endpoints of `urls` now; `None` when a name could not be resolved.
pub async fn resolve(urls: &[String]) -> Option<Vec<String>> {
    let mut endpoints = Vec::new();
    for url in urls {
        let Some(target) = parse(url) else {
            endpoints.push(url.clone());
            continue;
        };
        let addresses = match tokio::net::lookup_host((target.host, target.port)).await {
            Ok(addresses) => addresses.collect::<Vec<_>>(),
            Err(e) => {
                tracing::warn!(host = target.host, error = %e, "could not resolve a dependency's host");
                return None;
            }
        };
        endpoints.extend(expand(&target, addresses));
    }
    Some(endpoints)
}

/// One URL per address, or the URL as given (one address, or loopback only).
fn expand(target: &Target<'_>, mut addresses: Vec<SocketAddr>) -> Vec<String> {
    addresses.sort_unstable();
    addresses.dedup();
    if addresses.len() <= 1 || addresses.iter().all(|a| a.ip().is_loopback()) {
        return vec![target.url.to_owned()];
    }
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
    if !has_names(&urls) {
        return;
    }
    let every = balancer.config().refresh;
    let balancer = Arc::downgrade(balancer);
    actix_web::rt::spawn(refresh(balancer, urls, every));
}

async fn refresh(balancer: Weak<Balancer>, urls: Vec<String>, every: Duration) {
    loop {
        let found = resolve(&urls).await;
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
        assert_eq!(resolve(&urls).await, Some(urls.clone()));
        let unknown = vec!["http://no-such-host.invalid:7001".to_owned()];
        assert_eq!(resolve(&unknown).await, None);
    }

    #[actix_web::test]
    async fn a_name_that_stops_resolving_keeps_its_endpoints() {
        use crate::balancer::{Balancer, BalancerConfig};
        use crate::breaker::{BreakerConfig, SystemClock};
        let urls = vec!["http://no-such-host.invalid:7001".to_owned()];
        let config = BalancerConfig {
            refresh: Duration::from_millis(5),
            ..BalancerConfig::default()
        };
        let breaker = BreakerConfig {
            failure_threshold: 5,
            reset_timeout: Duration::from_secs(30),
        };
        let balancer = Arc::new(Balancer::new(
            "dep",
            urls.clone(),
            config,
            breaker,
            Arc::new(SystemClock),
        ));
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
