//! The balancer on a manual clock: choice, ejection, discovery.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::breaker::{BreakerState, ManualClock};

const FAST: Duration = Duration::from_millis(10);
const SLOW: Duration = Duration::from_millis(300);

fn urls(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("http://10.0.0.{i}:7001")).collect()
}

fn new_balancer_with(n: usize, config: BalancerConfig) -> (Balancer, ManualClock) {
    let clock = ManualClock::default();
    let breaker = BreakerConfig {
        failure_threshold: 1000,
        reset_timeout: Duration::from_secs(30),
    };
    let balancer = Balancer::new("dep", urls(n), config, breaker, Arc::new(clock.clone()));
    (balancer, clock)
}

fn new_balancer(n: usize, strategy: Strategy) -> (Balancer, ManualClock) {
    new_balancer_with(
        n,
        BalancerConfig {
            strategy,
            ..BalancerConfig::default()
        },
    )
}

/// Sends one call that ends at once with `verdict` after `took`; returns
/// the endpoint it went to.
fn call(balancer: &Balancer, took: Duration, verdict: Verdict) -> String {
    let picked = balancer.pick(&[]).expect("an endpoint");
    let url = picked.endpoint().url().to_owned();
    balancer.finish(picked, took, verdict, "test");
    url
}

/// Calls `url` gets out of `n` calls that all succeed fast.
fn share(balancer: &Balancer, n: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        *counts
            .entry(call(balancer, FAST, Verdict::Success))
            .or_default() += 1;
    }
    counts
}

/// Fails calls at `url` until it has failed `times` times.
fn fail_at(balancer: &Balancer, url: &str, times: usize) {
    fail_at_with(balancer, url, times, Verdict::Failure);
}

/// [`fail_at`] with the failures' verdict.
fn fail_at_with(balancer: &Balancer, url: &str, times: usize, failure: Verdict) {
    let mut failed = 0;
    while failed < times {
        let picked = balancer.pick(&[]).expect("an endpoint");
        let here = picked.endpoint().url() == url;
        let verdict = if here { failure } else { Verdict::Success };
        balancer.finish(picked, FAST, verdict, "test");
        failed += usize::from(here);
    }
}

fn state_of(balancer: &Balancer, url: &str) -> EndpointState {
    balancer
        .views()
        .into_iter()
        .find(|v| v.url == url)
        .expect("known endpoint")
        .state
}

#[test]
fn strategies_are_named_as_the_contract_says() {
    assert_eq!("p2c".parse(), Ok(Strategy::PowerOfTwo));
    assert_eq!("round_robin".parse(), Ok(Strategy::RoundRobin));
    assert!("random".parse::<Strategy>().is_err());
    assert_eq!(Strategy::default(), Strategy::PowerOfTwo);
}

#[test]
fn p2c_sends_calls_to_the_faster_endpoint() {
    let (balancer, _clock) = new_balancer(2, Strategy::PowerOfTwo);
    let [a, b] = [urls(2)[0].clone(), urls(2)[1].clone()];
    // Teach it: a answers slowly, b fast.
    for _ in 0..10 {
        let picked = balancer.pick(&[]).expect("endpoint");
        let took = if picked.endpoint().url() == a {
            SLOW
        } else {
            FAST
        };
        balancer.finish(picked, took, Verdict::Success, "test");
    }
    let counts = share(&balancer, 100);
    // With two endpoints both are always compared: the fast one wins each time.
    assert_eq!(counts.get(&b), Some(&100), "{counts:?}");
}

#[test]
fn p2c_sends_calls_to_the_idle_endpoint() {
    let (balancer, _clock) = new_balancer(2, Strategy::PowerOfTwo);
    let busy = balancer.pick(&[]).expect("endpoint");
    let busy_url = busy.endpoint().url().to_owned();
    // Equal estimates, one call in flight at `busy`: the other gets the next ones.
    let others: Vec<_> = (0..5)
        .map(|_| balancer.pick(&[]).expect("endpoint"))
        .collect();
    assert!(
        others
            .iter()
            .take(1)
            .all(|p| p.endpoint().url() != busy_url)
    );
    drop(others);
    drop(busy);
    assert!(balancer.views().iter().all(|v| v.in_flight == 0));
}

#[test]
fn a_slow_estimate_decays_so_the_endpoint_is_tried_again() {
    let (balancer, clock) = new_balancer(2, Strategy::PowerOfTwo);
    let slow = call(&balancer, SLOW, Verdict::Success);
    let now = clock.now();
    let endpoint = balancer
        .current()
        .into_iter()
        .find(|e| e.url() == slow)
        .expect("known");
    let before = endpoint.latency_ewma(now);
    clock.advance(Duration::from_secs(60));
    let after = endpoint.latency_ewma(clock.now());
    assert!(
        before >= SLOW.as_secs_f64() && after < FAST.as_secs_f64(),
        "{before} {after}"
    );
}

#[test]
fn round_robin_takes_turns() {
    let (balancer, _clock) = new_balancer(3, Strategy::RoundRobin);
    let order: Vec<String> = (0..6)
        .map(|_| call(&balancer, FAST, Verdict::Success))
        .collect();
    assert_eq!(order[..3], order[3..]);
    let mut first = order[..3].to_vec();
    first.sort();
    assert_eq!(first, urls(3));
}

#[test]
fn consecutive_failures_eject_for_a_growing_interval() {
    let (balancer, clock) = new_balancer(3, Strategy::RoundRobin);
    let sick = urls(3)[0].clone();
    fail_at(&balancer, &sick, 5);
    assert_eq!(state_of(&balancer, &sick), EndpointState::Ejected);
    assert!(!share(&balancer, 30).contains_key(&sick));
    // First ejection: 30 s.
    clock.advance(Duration::from_secs(29));
    assert_eq!(state_of(&balancer, &sick), EndpointState::Ejected);
    clock.advance(Duration::from_secs(1));
    assert_eq!(state_of(&balancer, &sick), EndpointState::Active);
    // Second: 60 s.
    fail_at(&balancer, &sick, 5);
    clock.advance(Duration::from_secs(59));
    assert_eq!(state_of(&balancer, &sick), EndpointState::Ejected);
    clock.advance(Duration::from_secs(1));
    assert_eq!(state_of(&balancer, &sick), EndpointState::Active);
    let view = balancer
        .views()
        .into_iter()
        .find(|v| v.url == sick)
        .expect("known");
    assert_eq!(view.ejections, 2);
}

#[test]
fn ejection_lasts_no_longer_than_the_cap() {
    let outlier = OutlierConfig {
        base_ejection: Duration::from_secs(100),
        max_ejection: Duration::from_secs(150),
        ..OutlierConfig::default()
    };
    let (balancer, clock) = new_balancer_with(
        3,
        BalancerConfig {
            outlier,
            ..BalancerConfig::default()
        },
    );
    let sick = urls(3)[1].clone();
    fail_at(&balancer, &sick, 5);
    clock.advance(Duration::from_secs(100));
    fail_at(&balancer, &sick, 5);
    clock.advance(Duration::from_secs(150));
    assert_eq!(state_of(&balancer, &sick), EndpointState::Active);
}

#[test]
fn a_failure_rate_ejects_without_failures_in_a_row() {
    let (balancer, _clock) = new_balancer(3, Strategy::RoundRobin);
    let flaky = urls(3)[2].clone();
    // Every other call at `flaky` fails: never 5 in a row, 50 % of its calls.
    let mut fail_next = true;
    for _ in 0..60 {
        let picked = balancer.pick(&[]).expect("endpoint");
        let verdict = if picked.endpoint().url() == flaky {
            fail_next = !fail_next;
            if fail_next {
                Verdict::Success
            } else {
                Verdict::Failure
            }
        } else {
            Verdict::Success
        };
        balancer.finish(picked, FAST, verdict, "test");
    }
    assert_eq!(state_of(&balancer, &flaky), EndpointState::Ejected);
    let healthy = &urls(3)[0];
    assert_eq!(state_of(&balancer, healthy), EndpointState::Active);
}

#[test]
fn no_more_than_the_share_is_ejected_and_never_the_last_endpoint() {
    let (balancer, _clock) = new_balancer(3, Strategy::RoundRobin);
    let all = urls(3);
    fail_at(&balancer, &all[0], 5);
    fail_at(&balancer, &all[1], 5);
    // Half of three is one: the second sick endpoint stays in rotation.
    let states: Vec<_> = all.iter().map(|u| state_of(&balancer, u)).collect();
    assert_eq!(
        states,
        [
            EndpointState::Ejected,
            EndpointState::Active,
            EndpointState::Active
        ]
    );

    let (single, _clock) = new_balancer(1, Strategy::PowerOfTwo);
    for _ in 0..20 {
        call(&single, FAST, Verdict::Failure);
    }
    assert_eq!(state_of(&single, &urls(1)[0]), EndpointState::Active);
}

#[test]
fn a_retry_goes_to_another_endpoint_while_there_is_one() {
    let (balancer, _clock) = new_balancer(2, Strategy::PowerOfTwo);
    let first = balancer.pick(&[]).expect("endpoint");
    let tried = vec![first.endpoint().clone()];
    let second = balancer.pick(&tried).expect("endpoint");
    assert!(!Arc::ptr_eq(first.endpoint(), second.endpoint()));
    assert!(!balancer.has_other(&[first.endpoint().clone(), second.endpoint().clone()]));
    // Every endpoint tried: the retry goes to one of them rather than nowhere.
    let third = balancer
        .pick(&[first.endpoint().clone(), second.endpoint().clone()])
        .expect("endpoint");
    drop((first, second, third));
}

#[test]
fn each_endpoint_has_its_own_breaker_and_all_open_refuses() {
    let clock = ManualClock::default();
    let breaker = BreakerConfig {
        failure_threshold: 2,
        reset_timeout: Duration::from_secs(10),
    };
    let config = BalancerConfig {
        outlier: OutlierConfig {
            consecutive_failures: 100,
            min_calls: 100,
            ..OutlierConfig::default()
        },
        ..BalancerConfig::default()
    };
    let balancer = Balancer::new("dep", urls(2), config, breaker, Arc::new(clock.clone()));
    let [a, b] = [urls(2)[0].clone(), urls(2)[1].clone()];
    fail_at(&balancer, &a, 2);
    assert!(!share(&balancer, 20).contains_key(&a));
    for _ in 0..2 {
        call(&balancer, FAST, Verdict::Failure);
    }
    let refused = balancer.pick(&[]).err().expect("every breaker open");
    assert!(refused.retry_after <= Duration::from_secs(10));
    clock.advance(Duration::from_secs(10));
    // The breakers let a trial through again.
    let trial = call(&balancer, FAST, Verdict::Success);
    assert!(trial == a || trial == b);
}

#[test]
fn discovery_adds_and_removes_endpoints_and_calls_in_flight_finish() {
    let (balancer, _clock) = new_balancer(2, Strategy::RoundRobin);
    let all = urls(3);
    let in_flight: Vec<Picked> = (0..2)
        .map(|_| balancer.pick(&[]).expect("endpoint"))
        .collect();
    balancer.set_endpoints(&all[1..]);
    let counts = share(&balancer, 20);
    assert_eq!(counts.keys().count(), 2, "{counts:?}");
    assert!(!counts.contains_key(&all[0]) && counts.contains_key(&all[2]));
    // The calls in flight at the endpoint that left still report.
    for picked in in_flight {
        balancer.finish(picked, FAST, Verdict::Success, "test");
    }
    // A kept endpoint keeps its state; an empty answer changes nothing.
    let kept = balancer
        .views()
        .into_iter()
        .find(|v| v.url == all[1])
        .expect("kept");
    assert_eq!(kept.in_flight, 0);
    balancer.set_endpoints(&[]);
    assert_eq!(balancer.views().len(), 2);
}

#[test]
fn an_endpoint_that_joins_gets_its_share_at_once() {
    let (balancer, clock) = new_balancer(2, Strategy::PowerOfTwo);
    // Both known endpoints answer in 10 ms for a while.
    for _ in 0..50 {
        clock.advance(Duration::from_secs(1));
        call(&balancer, FAST, Verdict::Success);
    }
    balancer.set_endpoints(&urls(3));
    let newcomer = urls(3)[2].clone();
    // Calls held in flight: the newcomer, as cheap as the others, takes some.
    let held: Vec<Picked> = (0..30)
        .map(|_| balancer.pick(&[]).expect("endpoint"))
        .collect();
    let at_newcomer = held
        .iter()
        .filter(|p| p.endpoint().url() == newcomer)
        .count();
    assert!((5..=15).contains(&at_newcomer), "{at_newcomer} of 30");
}

#[test]
fn a_retry_goes_back_to_the_tried_endpoint_when_the_others_breakers_refuse() {
    let clock = ManualClock::default();
    let breaker = BreakerConfig {
        failure_threshold: 1,
        reset_timeout: Duration::from_secs(10),
    };
    let balancer = Balancer::new(
        "dep",
        urls(2),
        BalancerConfig::default(),
        breaker,
        Arc::new(clock.clone()),
    );
    let [a, b] = [urls(2)[0].clone(), urls(2)[1].clone()];
    // b's breaker opens; a call's first attempt went to a and failed on the way
    // without a verdict (its breaker stays closed).
    fail_at(&balancer, &b, 1);
    let first = balancer.pick(&[]).expect("a");
    assert_eq!(first.endpoint().url(), a);
    let tried = vec![first.endpoint().clone()];
    balancer.finish(first, FAST, Verdict::Neither, "test");
    let retry = balancer.pick(&tried).expect("a again, rather than nowhere");
    assert_eq!(retry.endpoint().url(), a);
}

#[test]
fn a_healthy_window_earns_back_the_shorter_ejection() {
    let (balancer, clock) = new_balancer(3, Strategy::RoundRobin);
    let sick = urls(3)[0].clone();
    fail_at(&balancer, &sick, 5);
    clock.advance(Duration::from_secs(30));
    // Back in rotation: two windows of successes, the second one closing the first.
    for _ in 0..2 {
        share(&balancer, 6);
        clock.advance(Duration::from_secs(10));
    }
    share(&balancer, 3);
    fail_at(&balancer, &sick, 5);
    clock.advance(Duration::from_secs(30));
    assert_eq!(state_of(&balancer, &sick), EndpointState::Active);
}

#[test]
fn only_an_endpoint_ejected_as_unreachable_awaits_a_probe() {
    let (balancer, _clock) = new_balancer(4, Strategy::RoundRobin);
    let [gone, erring] = [urls(4)[0].clone(), urls(4)[1].clone()];
    fail_at_with(&balancer, &gone, 5, Verdict::Unreachable);
    fail_at(&balancer, &erring, 5);
    assert_eq!(state_of(&balancer, &gone), EndpointState::Ejected);
    assert_eq!(state_of(&balancer, &erring), EndpointState::Ejected);
    let probed: Vec<String> = balancer
        .awaiting_probe()
        .iter()
        .map(|e| e.url().to_owned())
        .collect();
    assert_eq!(probed, [gone]);
}

/// Two endpoints in turn, whose breakers open after `failure_threshold`
/// failures in a row and stay open 30 s.
fn two_taking_turns(failure_threshold: u32) -> (Balancer, ManualClock) {
    let clock = ManualClock::default();
    let breaker = BreakerConfig {
        failure_threshold,
        reset_timeout: Duration::from_secs(30),
    };
    let config = BalancerConfig {
        strategy: Strategy::RoundRobin,
        ..BalancerConfig::default()
    };
    let balancer = Balancer::new("dep", urls(2), config, breaker, Arc::new(clock.clone()));
    (balancer, clock)
}

#[test]
fn a_revived_endpoint_takes_calls_at_once_through_its_breaker() {
    // The breaker opens with the fifth failure in a row, as ejection does.
    let (balancer, clock) = two_taking_turns(5);
    let gone = urls(2)[0].clone();
    fail_at_with(&balancer, &gone, 5, Verdict::Unreachable);
    assert_eq!(state_of(&balancer, &gone), EndpointState::Ejected);
    let endpoint = balancer.awaiting_probe().pop().expect("awaits a probe");
    assert_eq!(endpoint.breaker().state(), BreakerState::Open);
    clock.advance(Duration::from_secs(2));
    balancer.revive(&endpoint);
    assert_eq!(state_of(&balancer, &gone), EndpointState::Active);
    assert!(balancer.awaiting_probe().is_empty());
    // Its breaker is closed, 28 s before its reset timeout: the endpoint
    // has its share again.
    assert_eq!(endpoint.breaker().state(), BreakerState::Closed);
    let counts = share(&balancer, 20);
    assert_eq!(counts.get(&gone), Some(&10), "{counts:?}");
}

#[test]
fn an_endpoint_whose_last_failures_were_errors_is_not_probed() {
    let (balancer, _clock) = new_balancer(3, Strategy::RoundRobin);
    let url = urls(3)[0].clone();
    fail_at_with(&balancer, &url, 2, Verdict::Unreachable);
    fail_at(&balancer, &url, 3);
    assert_eq!(state_of(&balancer, &url), EndpointState::Ejected);
    assert!(balancer.awaiting_probe().is_empty());
}

#[test]
fn an_endpoint_whose_breaker_opened_on_unreachable_calls_awaits_a_probe_too() {
    let (balancer, _clock) = two_taking_turns(2);
    let gone = urls(2)[0].clone();
    fail_at_with(&balancer, &gone, 2, Verdict::Unreachable);
    // Not ejected (two failures, not five), but its breaker refuses calls.
    assert_eq!(state_of(&balancer, &gone), EndpointState::Active);
    assert!(!share(&balancer, 10).contains_key(&gone));
    let endpoint = balancer.awaiting_probe().pop().expect("awaits a probe");
    balancer.revive(&endpoint);
    assert_eq!(share(&balancer, 10).get(&gone), Some(&5));
}

/// A call picked for `url` (every other endpoint avoided).
fn pick_at(balancer: &Balancer, url: &str) -> Picked {
    let others: Vec<Arc<Endpoint>> = balancer
        .current()
        .into_iter()
        .filter(|e| e.url() != url)
        .collect();
    let picked = balancer.pick(&others).expect("an endpoint");
    assert_eq!(picked.endpoint().url(), url);
    picked
}

/// Sends one call to `url` that ends with `verdict` after `took`.
fn call_at(balancer: &Balancer, url: &str, took: Duration, verdict: Verdict) {
    balancer.finish(pick_at(balancer, url), took, verdict, "test");
}

#[test]
fn a_revived_endpoint_starts_at_the_others_estimate_not_its_last() {
    let (balancer, _clock) = new_balancer(3, Strategy::PowerOfTwo);
    let gone = urls(3)[0].clone();
    // Slow before it died: its estimate is 300 ms, the others' 10 ms.
    call_at(&balancer, &gone, SLOW, Verdict::Success);
    for _ in 0..5 {
        call_at(&balancer, &gone, FAST, Verdict::Unreachable);
    }
    let endpoint = balancer.awaiting_probe().pop().expect("awaits a probe");
    balancer.revive(&endpoint);
    // The process that answered the probe is new: as cheap as the others.
    let counts = share(&balancer, 60);
    assert!(counts.get(&gone).copied().unwrap_or(0) >= 5, "{counts:?}");
}

#[test]
fn an_endpoint_that_left_has_its_series_removed_and_its_late_calls_report_nothing() {
    let mut registry = shared_http::metrics::Registry::default();
    let metrics = BalancerMetrics::register(&mut registry);
    let balancer = two_taking_turns(5).0.with_metrics(metrics);
    let [gone, stays] = [urls(2)[0].clone(), urls(2)[1].clone()];
    share(&balancer, 4);
    call_at(&balancer, &gone, FAST, Verdict::Failure);
    let text = || {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        text
    };
    assert!(text().contains(&format!(r#"endpoint="{gone}""#)));
    // A call on its way when the endpoint leaves.
    let late = pick_at(&balancer, &gone);
    balancer.set_endpoints(std::slice::from_ref(&stays));
    let after = text();
    assert!(!after.contains(&format!(r#"endpoint="{gone}""#)), "{after}");
    assert!(after.contains(&format!(r#"endpoint="{stays}""#)), "{after}");
    balancer.finish(late, FAST, Verdict::Success, "test");
    assert!(!text().contains(&format!(r#"endpoint="{gone}""#)));
}
