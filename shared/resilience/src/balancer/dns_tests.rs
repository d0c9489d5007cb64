//! Service names (SRV records) resolved against a name server on a loopback
//! UDP port that answers from a zone the test holds, and the balancer that
//! follows them.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::op::{Message, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, SRV};
use hickory_resolver::proto::rr::{Name, RData, Record};

use super::{Dns, Lookup, parse, refusal, resolve, spawn_with};
use crate::balancer::Balancer;

type Zone = Arc<Mutex<Vec<Record>>>;

fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("a name")
}

fn srv(service: &str, priority: u16, port: u16, target: &str) -> Record {
    let data = SRV::new(priority, 10, port, name(target));
    Record::from_rdata(name(service), 0, RData::SRV(data))
}

fn a(host: &str, ip: [u8; 4]) -> Record {
    Record::from_rdata(name(host), 0, RData::A(A(Ipv4Addr::from(ip))))
}

fn same(one: &Name, other: &Name) -> bool {
    let (one, other) = (one.to_ascii(), other.to_ascii());
    one.trim_end_matches('.')
        .eq_ignore_ascii_case(other.trim_end_matches('.'))
}

/// The answer to `query` from `zone`: its records of the name and type
/// asked, NXDOMAIN when it has no record of that name at all.
fn answer(query: Message, zone: &[Record]) -> Message {
    let questions = query.queries.clone();
    let mut answer = query.into_response();
    answer.metadata.authoritative = true;
    for question in &questions {
        let named = zone.iter().filter(|r| same(&r.name, question.name()));
        if named.clone().next().is_none() {
            answer.metadata.response_code = ResponseCode::NXDomain;
        }
        let found = named.filter(|r| r.record_type() == question.query_type());
        answer.add_answers(found.cloned());
    }
    answer
}

/// A name server on a loopback port answering from `zone` (TTL 0), for as
/// long as the test runs.
async fn name_server(zone: Zone) -> SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = socket.local_addr().expect("address");
    actix_web::rt::spawn(async move {
        let mut buffer = vec![0; 4096];
        while let Ok((n, peer)) = socket.recv_from(&mut buffer).await {
            let Ok(query) = Message::from_vec(&buffer[..n]) else {
                continue;
            };
            let reply = answer(query, &zone.lock().expect("zone"));
            let bytes = reply.to_vec().expect("an encodable answer");
            let _ = socket.send_to(&bytes, peer).await;
        }
    });
    address
}

/// A resolver that asks only `server`, and caches nothing.
fn dns_at(server: SocketAddr) -> Dns {
    let mut name_server = NameServerConfig::udp(server.ip());
    name_server.connections[0].port = server.port();
    let config = ResolverConfig::from_parts(None, vec![], vec![name_server]);
    let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
    builder.options_mut().cache_size = 0;
    builder.options_mut().use_hosts_file = ResolveHosts::Never;
    Dns(Some(builder.build().expect("a resolver")))
}

const INVENTORY: &str = "_http._tcp.inventory.shop.test";

#[test]
fn a_name_starting_with_an_underscore_and_no_port_is_a_service() {
    let target = parse("http://_http._tcp.inventory/api").expect("a name");
    assert_eq!(target.lookup, Lookup::Service);
    assert_eq!((target.host, target.path), ("_http._tcp.inventory", "/api"));
    assert_eq!(
        parse("http://inventory").expect("a name").lookup,
        Lookup::Host(80)
    );
    for refused in [
        "http://_http._tcp.inventory:7001",
        "https://_http._tcp.inventory",
    ] {
        assert!(refusal(refused).is_some(), "{refused}");
    }
    for fine in ["http://_http._tcp.inventory/api", "https://inventory:7001"] {
        assert_eq!(refusal(fine), None, "{fine}");
    }
}

#[actix_web::test]
async fn a_service_is_every_address_of_its_first_priority_targets_at_their_ports() {
    let zone = Arc::new(Mutex::new(vec![
        srv(INVENTORY, 0, 7101, "inv-0.shop.test"),
        srv(INVENTORY, 0, 7102, "inv-1.shop.test"),
        srv(INVENTORY, 0, 7103, "gone.shop.test"),
        srv(INVENTORY, 1, 7109, "backup.shop.test"),
        a("inv-0.shop.test", [10, 0, 0, 1]),
        a("inv-1.shop.test", [10, 0, 0, 3]),
        a("inv-1.shop.test", [10, 0, 0, 2]),
        a("backup.shop.test", [10, 0, 0, 9]),
    ]));
    let dns = dns_at(name_server(zone).await);
    let urls = vec![
        format!("http://{INVENTORY}/api"),
        "http://127.0.0.1:7001".to_owned(),
    ];
    assert_eq!(
        resolve(&urls, &dns).await.expect("found"),
        [
            "http://10.0.0.1:7101/api",
            "http://10.0.0.2:7102/api",
            "http://10.0.0.3:7102/api",
            "http://127.0.0.1:7001",
        ]
    );
    // One target, even on loopback, is called at its address: the URL as
    // given names no host to connect to.
    let one = Arc::new(Mutex::new(vec![
        srv(INVENTORY, 0, 7101, "localhost.shop.test"),
        a("localhost.shop.test", [127, 0, 0, 1]),
    ]));
    let dns = dns_at(name_server(one).await);
    assert_eq!(
        resolve(&urls[..1], &dns).await.expect("found"),
        ["http://127.0.0.1:7101/api"]
    );
}

#[actix_web::test]
async fn a_service_without_records_or_resolver_is_not_resolved_now() {
    let zone = Arc::new(Mutex::new(vec![
        srv(INVENTORY, 0, 7101, "gone.shop.test"),
        srv("_http._tcp.pricing.shop.test", 0, 7103, "."),
    ]));
    let dns = dns_at(name_server(zone).await);
    for service in [
        INVENTORY,
        "_http._tcp.pricing.shop.test",
        "_http._tcp.none.shop.test",
    ] {
        let urls = vec![format!("http://{service}")];
        assert_eq!(resolve(&urls, &dns).await, None, "{service}");
        assert_eq!(resolve(&urls, &Dns(None)).await, None, "{service}");
    }
}

#[actix_web::test]
async fn the_balancer_follows_the_records_as_they_change() {
    let zone: Zone = Arc::new(Mutex::new(vec![
        srv(INVENTORY, 0, 7101, "inv-0.shop.test"),
        srv(INVENTORY, 0, 7102, "inv-1.shop.test"),
        a("inv-0.shop.test", [127, 0, 0, 1]),
        a("inv-1.shop.test", [127, 0, 0, 1]),
    ]));
    let dns = dns_at(name_server(zone.clone()).await);
    let urls = vec![format!("http://{INVENTORY}")];
    let balancer = super::tests::refreshing(&urls, Duration::from_millis(10));
    spawn_with(&balancer, urls, move || dns);
    let listed = |balancer: &Balancer| -> Vec<String> {
        balancer.views().into_iter().map(|v| v.url).collect()
    };
    let wait_for = |want: &'static [&'static str]| {
        let balancer = balancer.clone();
        async move {
            for _ in 0..300 {
                if listed(&balancer) == want {
                    return;
                }
                actix_web::rt::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("endpoints {:?}, not {want:?}", listed(&balancer));
        }
    };
    wait_for(&["http://127.0.0.1:7101", "http://127.0.0.1:7102"]).await;
    // A replica goes (its record with it), another comes at a new port.
    *zone.lock().expect("zone") = vec![
        srv(INVENTORY, 0, 7102, "inv-1.shop.test"),
        srv(INVENTORY, 0, 7104, "inv-2.shop.test"),
        a("inv-1.shop.test", [127, 0, 0, 1]),
        a("inv-2.shop.test", [127, 0, 0, 1]),
    ];
    wait_for(&["http://127.0.0.1:7102", "http://127.0.0.1:7104"]).await;
    // The records gone altogether: the endpoints it had stay.
    zone.lock().expect("zone").clear();
    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    wait_for(&["http://127.0.0.1:7102", "http://127.0.0.1:7104"]).await;
}
