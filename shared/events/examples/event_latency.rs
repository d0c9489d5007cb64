//! How long events take from their commit to a consumer: follows a stream
//! from now on (an ephemeral ordered consumer, as the live feed does) for a
//! while, and prints the count and the p50/p99/max of "received - `time`"
//! (the event's `time` is when the change was written to the outbox, to the
//! millisecond). Used by `scripts/bench.sh`.
//!
//!   cargo run --release -p shared --example event_latency -- nats://127.0.0.1:4222 SHOP_ORDER 10

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull};
use futures::StreamExt;
use shared_events::CloudEvent;
use shared_http::timestamp;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, stream, seconds] = args.as_slice() else {
        anyhow::bail!("usage: event_latency NATS_URL STREAM SECONDS");
    };
    let seconds: u64 = seconds.parse()?;
    let client = async_nats::connect(url.as_str()).await?;
    let jetstream = jetstream::new(client);
    let consumer = jetstream
        .get_stream(stream)
        .await?
        .create_consumer(pull::OrderedConfig {
            deliver_policy: DeliverPolicy::New,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    // Ready: the caller starts its load after this line.
    println!("following {stream}");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut latencies = Vec::new();
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline.into(), messages.next()).await {
        let received = timestamp::now_ms();
        let event: CloudEvent = serde_json::from_slice(&message?.payload)?;
        if let Some(at) = event.time_ms() {
            latencies.push(received - at);
        }
    }
    latencies.sort_unstable();
    let at = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index =
            ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len().max(1)) - 1;
        latencies.get(index).copied().unwrap_or(0)
    };
    println!(
        "events {} p50_ms {} p99_ms {} max_ms {}",
        latencies.len(),
        at(0.50),
        at(0.99),
        latencies.last().copied().unwrap_or(0)
    );
    Ok(())
}
