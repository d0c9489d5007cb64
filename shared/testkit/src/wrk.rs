//! Benchmarks' load: one `wrk` run against a URL, its figures read back.
//!
//! Not for tests (figures depend on the machine): the services' benchmark
//! examples use it. Needs `wrk` (Debian package `wrk`). Settings from the
//! environment: `DURATION` (default 10s), `CONNECTIONS` (32), `THREADS` (2).

/// What one run measured.
#[derive(Debug, Clone, Copy)]
pub struct WrkRun {
    pub requests_per_second: f64,
    pub p99_ms: f64,
    pub non_2xx: u64,
}

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// One run of GETs to `url`, each with `Authorization: Bearer <token>` when given.
///
/// # Panics
/// When `wrk` cannot be run.
pub fn run(url: &str, token: Option<&str>) -> WrkRun {
    let mut command = std::process::Command::new("wrk");
    command.args([
        "--latency",
        "-d",
        &setting("DURATION", "10s"),
        "-c",
        &setting("CONNECTIONS", "32"),
        "-t",
        &setting("THREADS", "2"),
    ]);
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let output = command
        .arg(url)
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(prefix)
                    .map(str::trim)
                    .map(str::to_owned)
            })
            .unwrap_or_default()
    };
    WrkRun {
        requests_per_second: field("Requests/sec:").parse().unwrap_or(0.0),
        p99_ms: millis(&field("99%")),
        non_2xx: field("Non-2xx or 3xx responses:").parse().unwrap_or(0),
    }
}

/// wrk's latency (`812.00us`, `1.20ms`, `1.01s`) in milliseconds.
fn millis(text: &str) -> f64 {
    let number = |suffix: &str| text.strip_suffix(suffix)?.parse::<f64>().ok();
    number("us")
        .map(|us| us / 1000.0)
        .or_else(|| number("ms"))
        .or_else(|| number("s").map(|s| s * 1000.0))
        .unwrap_or(f64::NAN)
}

/// `RUNS` (default 3) runs of [`run`] off the async workers, each printed
/// under `label`.
///
/// # Panics
/// When the wrk thread panics.
pub async fn runs(label: &str, url: &str, token: Option<&str>) {
    for n in 1..=setting("RUNS", "3").parse().unwrap_or(3) {
        let (url, token) = (url.to_owned(), token.map(str::to_owned));
        let result = actix_web::rt::task::spawn_blocking(move || run(&url, token.as_deref()))
            .await
            .expect("the wrk thread");
        println!(
            "{label:<28} run {n}: {:>10.0} rps  p99 {:>7.2} ms  non-2xx {}",
            result.requests_per_second, result.p99_ms, result.non_2xx
        );
    }
}

#[cfg(test)]
mod tests {
    use super::millis;

    #[test]
    fn latencies_read_in_milliseconds() {
        assert!((millis("812.00us") - 0.812).abs() < 1e-9);
        assert!((millis("1.20ms") - 1.2).abs() < 1e-9);
        assert!((millis("1.01s") - 1010.0).abs() < 1e-9);
        assert!(millis("soon").is_nan());
    }
}
