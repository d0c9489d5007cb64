//! Readiness probes of the endpoints taken out of rotation (ejected, or
//! their breaker open) because they could not be reached. A replica that
//! died and was started again at the same address (a fixed list, a
//! restarted container) would otherwise sit out its whole ejection or reset
//! timeout, 30 s and more, while it could serve; one that answers its
//! readiness probe is back in rotation at once. Endpoints out for the
//! answers they gave (errors, lateness) are not probed: they are reachable
//! and ready, and only time tells whether they have recovered.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::Balancer;

/// How long one probe may take.
const TIMEOUT: Duration = Duration::from_secs(1);

/// Asks each endpoint of `balancer` that awaits a probe for `path` (its
/// readiness page) every `probe_every` of its outlier settings, for as
/// long as the balancer exists.
pub fn spawn(balancer: &Arc<Balancer>, path: &'static str) {
    let every = balancer.config().outlier.probe_every;
    let balancer = Arc::downgrade(balancer);
    actix_web::rt::spawn(run(balancer, path, every));
}

async fn run(balancer: Weak<Balancer>, path: &'static str, every: Duration) {
    let http = awc::Client::builder()
        .disable_redirects()
        .timeout(TIMEOUT)
        .finish();
    loop {
        actix_web::rt::time::sleep(every).await;
        let Some(alive) = balancer.upgrade() else {
            return;
        };
        for endpoint in alive.awaiting_probe() {
            let answer = http.get(format!("{}{path}", endpoint.url())).send().await;
            if answer.is_ok_and(|res| res.status().is_success()) {
                alive.revive(&endpoint);
            }
        }
    }
}
