//! Fault injection for demos and resilience drills, off unless configured.
//!
//! With `CHAOS_DELAY_RATE` a share of requests waits a random time from
//! `CHAOS_DELAY_MS` before being served; with `CHAOS_FAILURE_RATE` a share is
//! answered 500 or 503 with a problem body instead of being served. Health,
//! metrics and API-description paths ([`paths::is_plumbing`]) are never
//! touched, so probes stay honest.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::web;
use rand::Rng;

use crate::config::ChaosConfig;
use crate::paths;
use crate::problem::Problem;

/// What chaos decided for one request.
#[derive(Debug, PartialEq)]
struct Verdict {
    delay: Option<std::time::Duration>,
    failure: Option<StatusCode>,
}

fn decide(config: &ChaosConfig, rng: &mut impl Rng) -> Verdict {
    let delay = rng.random_bool(config.delay_rate).then(|| {
        let (low, high) = config.delay;
        rng.random_range(low..=high)
    });
    let failure = rng.random_bool(config.failure_rate).then(|| {
        if rng.random_bool(0.5) {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    });
    Verdict { delay, failure }
}

/// Middleware; reads its [`ChaosConfig`] from app data.
///
/// # Errors
/// Passes on the inner service's error unchanged.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> actix_web::Result<ServiceResponse<EitherBody<impl MessageBody>>> {
    let config = req.app_data::<web::Data<ChaosConfig>>().cloned();
    if let Some(config) = config.filter(|c| !c.is_off() && !paths::is_plumbing(req.path())) {
        // The thread-local generator is not `Send`; it is dropped before the await.
        let verdict = decide(&config, &mut rand::rng());
        if let Some(delay) = verdict.delay {
            actix_web::rt::time::sleep(delay).await;
        }
        if let Some(status) = verdict.failure {
            tracing::info!(status = status.as_u16(), "chaos: injected failure");
            let problem = Problem::new(status, "chaos_injected", "Injected failure")
                .detail("Fault injection is on (CHAOS_FAILURE_RATE); retry the request.");
            return Ok(req
                .into_response(problem.to_response())
                .map_into_right_body());
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn off_never_interferes() {
        let mut rng = rand::rng();
        for _ in 0..1000 {
            assert_eq!(
                decide(&ChaosConfig::off(), &mut rng),
                Verdict {
                    delay: None,
                    failure: None
                }
            );
        }
    }

    #[test]
    fn rates_and_ranges_are_respected() {
        let config = ChaosConfig {
            delay_rate: 0.5,
            delay: (Duration::from_millis(100), Duration::from_millis(500)),
            failure_rate: 1.0,
        };
        let mut rng = rand::rng();
        let verdicts: Vec<_> = (0..2000).map(|_| decide(&config, &mut rng)).collect();
        let delayed = verdicts.iter().filter(|v| v.delay.is_some()).count();
        assert!(
            (800..1200).contains(&delayed),
            "about half delayed, got {delayed}"
        );
        for v in &verdicts {
            assert!(v.failure.is_some());
            if let Some(d) = v.delay {
                assert!((Duration::from_millis(100)..=Duration::from_millis(500)).contains(&d));
            }
        }
    }
}
