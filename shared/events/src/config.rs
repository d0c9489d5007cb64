//! The `NATS_URL` and `EVENTS_*` settings.

use std::time::Duration;

use shared_config::{ConfigError, Env};

/// Events (NATS JetStream): off while `NATS_URL` is unset.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// `NATS_URL`: `nats://host:4222` (a comma list names several servers).
    pub nats_url: Option<String>,
    /// `EVENTS_STREAM_REPLICAS`: copies of each stream (3 on a JetStream cluster).
    pub stream_replicas: usize,
    /// `EVENTS_DUPLICATE_WINDOW_MS`: how long JetStream remembers a `Nats-Msg-Id`.
    pub duplicate_window: Duration,
    /// `EVENTS_MAX_AGE_MS`: how long a stream keeps an event; also how long
    /// a consumer's inbox remembers a handled id ([`Self::inbox_retention`]).
    pub max_age: Duration,
    /// `EVENTS_MAX_BYTES`: the most a stream holds before dropping its oldest events.
    pub max_bytes: i64,
    /// `EVENTS_DEAD_LETTER_MAX_BYTES`: the most the dead-letter stream holds;
    /// full, it refuses new dead letters (their events stay undelivered and
    /// come again) rather than dropping old ones. Dead letters never age out.
    pub dead_letter_max_bytes: i64,
    /// `EVENTS_OUTBOX_RETENTION_MS`: how long a sent outbox row is kept
    /// before it is pruned.
    pub outbox_retention: Duration,
    /// `EVENTS_RELAY_INTERVAL_MS`: how often the relay looks at the outbox when
    /// nothing woke it (a commit in this process wakes it at once).
    pub relay_interval: Duration,
    /// `EVENTS_RELAY_LINGER_MS`: after a commit wakes the relay, how long it
    /// waits for more before its round (more events per round, fewer writes).
    pub relay_linger: Duration,
    /// `EVENTS_RELAY_BATCH`: outbox rows published per round.
    pub relay_batch: usize,
    /// `EVENTS_RELAY_LEASE_MS`: how long a relay's claim on a shared outbox
    /// lasts without renewal; a frozen or cut-off replica's claim lapses after
    /// this and another replica carries on.
    pub relay_lease: Duration,
    /// `EVENTS_MAX_DELIVER`: deliveries of one event before it is a dead letter.
    pub max_deliver: i64,
    /// `EVENTS_REDELIVERY_BACKOFF_MS`: the waits before each redelivery
    /// (comma list; the last one repeats).
    pub redelivery_backoff: Vec<Duration>,
    /// `EVENTS_ACK_WAIT_MS`: how long a consumer may hold an event unacknowledged
    /// (a crashed consumer's events come back after this).
    pub ack_wait: Duration,
    /// `EVENTS_STREAMS_PER_CALLER`: live-feed streams one caller (token
    /// subject, else client address) may hold open at once.
    pub streams_per_caller: usize,
    /// `EVENTS_FEED_KEEP_ALIVE_MS`: the longest a live-feed stream goes
    /// without a write (a comment when nothing it may see happened): at most
    /// [`MAX_FEED_KEEP_ALIVE`], under the idle timeout of common proxies.
    pub feed_keep_alive: Duration,
}

/// The longest `EVENTS_FEED_KEEP_ALIVE_MS` may be.
pub const MAX_FEED_KEEP_ALIVE: Duration = Duration::from_secs(15);

impl EventsConfig {
    /// Events off.
    pub fn off() -> Self {
        Self {
            nats_url: None,
            stream_replicas: 1,
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 1 << 30,
            dead_letter_max_bytes: 1 << 30,
            outbox_retention: Duration::from_secs(24 * 3600),
            relay_interval: Duration::from_millis(500),
            relay_linger: Duration::from_millis(10),
            relay_batch: 256,
            relay_lease: Duration::from_secs(5),
            max_deliver: 5,
            redelivery_backoff: vec![
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(30),
            ],
            ack_wait: Duration::from_secs(30),
            streams_per_caller: 4,
            feed_keep_alive: MAX_FEED_KEEP_ALIVE,
        }
    }

    /// Whether events are on (`NATS_URL` set).
    pub fn is_on(&self) -> bool {
        self.nats_url.is_some()
    }

    /// # Errors
    /// When `NATS_URL` is not a `nats://` (or `tls://`) URL list, or an
    /// `EVENTS_*` variable has a bad value.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let off = Self::off();
        let nats_url = match env.optional("NATS_URL") {
            None => None,
            Some(raw) => {
                let good = raw
                    .split(',')
                    .map(str::trim)
                    .all(|url| url.starts_with("nats://") || url.starts_with("tls://"));
                if !good {
                    return Err(ConfigError::new(
                        "NATS_URL",
                        "<hidden>",
                        "expected nats://host:port (a comma list for several servers)",
                    ));
                }
                Some(raw)
            }
        };
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let config = Self {
            nats_url,
            stream_replicas: env.at_least_as("EVENTS_STREAM_REPLICAS", 1, 1)?,
            duplicate_window: env.millis(
                "EVENTS_DUPLICATE_WINDOW_MS",
                ms(off.duplicate_window),
                1000,
            )?,
            max_age: env.millis("EVENTS_MAX_AGE_MS", ms(off.max_age), 1000)?,
            max_bytes: env.at_least_as("EVENTS_MAX_BYTES", 1 << 30, 1 << 20)?,
            dead_letter_max_bytes: env.at_least_as(
                "EVENTS_DEAD_LETTER_MAX_BYTES",
                1 << 30,
                1 << 20,
            )?,
            outbox_retention: env.millis(
                "EVENTS_OUTBOX_RETENTION_MS",
                ms(off.outbox_retention),
                1000,
            )?,
            relay_interval: env.millis("EVENTS_RELAY_INTERVAL_MS", ms(off.relay_interval), 10)?,
            relay_linger: env.millis("EVENTS_RELAY_LINGER_MS", ms(off.relay_linger), 0)?,
            relay_batch: env.at_least_as("EVENTS_RELAY_BATCH", 256, 1)?,
            relay_lease: env.millis("EVENTS_RELAY_LEASE_MS", ms(off.relay_lease), 100)?,
            max_deliver: env.at_least_as("EVENTS_MAX_DELIVER", 5, 2)?,
            redelivery_backoff: env
                .millis_list("EVENTS_REDELIVERY_BACKOFF_MS", &off.redelivery_backoff)?,
            ack_wait: env.millis("EVENTS_ACK_WAIT_MS", ms(off.ack_wait), 100)?,
            streams_per_caller: env.at_least_as("EVENTS_STREAMS_PER_CALLER", 4, 1)?,
            feed_keep_alive: feed_keep_alive(env)?,
        };
        config.check_duplicate_window()?;
        Ok(config)
    }

    /// A relay that takes over from one whose lease lapsed publishes again
    /// what the other may have stored up to a lease ago: JetStream drops those
    /// copies only while it remembers their ids, so the duplicate window must
    /// outlast two leases.
    fn check_duplicate_window(&self) -> Result<(), ConfigError> {
        if self.duplicate_window >= self.relay_lease * 2 {
            return Ok(());
        }
        let window = self.duplicate_window.as_millis().to_string();
        Err(ConfigError::new(
            "EVENTS_DUPLICATE_WINDOW_MS",
            &window,
            format_args!(
                "must be at least twice EVENTS_RELAY_LEASE_MS ({} ms), or a relay taking over \
                 could store an event twice",
                self.relay_lease.as_millis()
            ),
        ))
    }

    /// How long a consumer's inbox remembers a handled event id: as long as
    /// the stream keeps the event. The one rule tying the two together: an
    /// event a consumer may still be given (its stream has it) is one whose id
    /// the inbox still has, so even a durable consumer created anew changes
    /// nothing twice. A consumer created anew starts no earlier than this
    /// ([`Self::first_delivery_since`]), in case the producer's stream keeps
    /// events longer than this service's `EVENTS_MAX_AGE_MS` says.
    pub fn inbox_retention(&self) -> Duration {
        self.max_age
    }

    /// Where a durable consumer created at `now_ms` starts: at the oldest
    /// events whose ids the inbox may still hold.
    pub fn first_delivery_since(&self, now_ms: i64) -> time::OffsetDateTime {
        let retention = i64::try_from(self.inbox_retention().as_millis()).unwrap_or(i64::MAX);
        let since_ms = now_ms.saturating_sub(retention).max(0);
        time::OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(since_ms)
    }

    /// The wait before redelivering an event delivered `deliveries` times.
    pub fn backoff_after(&self, deliveries: i64) -> Duration {
        let index = usize::try_from(deliveries.saturating_sub(1)).unwrap_or(0);
        self.redelivery_backoff
            .get(index)
            .or(self.redelivery_backoff.last())
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }
}

/// `EVENTS_FEED_KEEP_ALIVE_MS`: 100 ms to [`MAX_FEED_KEEP_ALIVE`].
fn feed_keep_alive(env: &Env) -> Result<Duration, ConfigError> {
    let name = "EVENTS_FEED_KEEP_ALIVE_MS";
    let most = u64::try_from(MAX_FEED_KEEP_ALIVE.as_millis()).unwrap_or(u64::MAX);
    let period = env.millis(name, most, 100)?;
    if period > MAX_FEED_KEEP_ALIVE {
        let ms = period.as_millis().to_string();
        return Err(ConfigError::new(
            name,
            &ms,
            format_args!("must be at most {most} ms (proxies cut idle connections)"),
        ));
    }
    Ok(period)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_per_caller_default_to_four_and_take_no_zero() {
        let events =
            |pairs: &[(&str, &str)]| EventsConfig::from_env(&Env::from_pairs(pairs.to_vec()));
        assert_eq!(events(&[]).expect("defaults").streams_per_caller, 4);
        let set = events(&[("EVENTS_STREAMS_PER_CALLER", "2")]).expect("valid");
        assert_eq!(set.streams_per_caller, 2);
        assert!(events(&[("EVENTS_STREAMS_PER_CALLER", "0")]).is_err());
    }

    /// A short outbox retention once pruned the inbox too, so a durable
    /// consumer created anew replayed events whose ids were forgotten.
    #[test]
    fn the_inbox_remembers_ids_as_long_as_the_stream_keeps_events() {
        let events =
            |pairs: &[(&str, &str)]| EventsConfig::from_env(&Env::from_pairs(pairs.to_vec()));
        for pairs in [
            &[][..],
            &[("EVENTS_OUTBOX_RETENTION_MS", "1000")][..],
            &[
                ("EVENTS_MAX_AGE_MS", "90000000"),
                ("EVENTS_OUTBOX_RETENTION_MS", "60000"),
            ][..],
        ] {
            let config = events(pairs).expect("valid");
            assert!(config.inbox_retention() >= config.max_age, "{pairs:?}");
            let now = 1_800_000_000_000;
            let since = config.first_delivery_since(now);
            let retention = i64::try_from(config.inbox_retention().as_millis()).expect("small");
            assert_eq!(
                i64::try_from(since.unix_timestamp_nanos() / 1_000_000).expect("ms"),
                now - retention,
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn the_dead_letters_have_a_size_limit_of_their_own() {
        let events =
            |pairs: &[(&str, &str)]| EventsConfig::from_env(&Env::from_pairs(pairs.to_vec()));
        assert_eq!(
            events(&[]).expect("defaults").dead_letter_max_bytes,
            1 << 30
        );
        let set = events(&[
            ("EVENTS_DEAD_LETTER_MAX_BYTES", "2097152"),
            ("EVENTS_MAX_BYTES", "4194304"),
        ])
        .expect("valid");
        assert_eq!(
            (set.dead_letter_max_bytes, set.max_bytes),
            (2 << 20, 4 << 20)
        );
        assert!(events(&[("EVENTS_DEAD_LETTER_MAX_BYTES", "1000")]).is_err());
    }

    #[test]
    fn the_duplicate_window_outlasts_two_relay_leases() {
        let events =
            |pairs: &[(&str, &str)]| EventsConfig::from_env(&Env::from_pairs(pairs.to_vec()));
        assert!(events(&[("EVENTS_DUPLICATE_WINDOW_MS", "10000")]).is_ok());
        let short = events(&[("EVENTS_DUPLICATE_WINDOW_MS", "9999")]).expect_err("refused");
        assert!(
            short.to_string().contains("EVENTS_RELAY_LEASE_MS"),
            "{short}"
        );
        assert!(
            events(&[
                ("EVENTS_DUPLICATE_WINDOW_MS", "3000"),
                ("EVENTS_RELAY_LEASE_MS", "1500"),
            ])
            .is_ok()
        );
    }

    #[test]
    fn the_feed_keep_alive_is_15_s_at_most() {
        let events =
            |pairs: &[(&str, &str)]| EventsConfig::from_env(&Env::from_pairs(pairs.to_vec()));
        let keep_alive = |c: EventsConfig| c.feed_keep_alive;
        assert_eq!(
            keep_alive(events(&[]).expect("defaults")),
            MAX_FEED_KEEP_ALIVE
        );
        let set = events(&[("EVENTS_FEED_KEEP_ALIVE_MS", "500")]).expect("valid");
        assert_eq!(keep_alive(set), Duration::from_millis(500));
        assert!(events(&[("EVENTS_FEED_KEEP_ALIVE_MS", "15001")]).is_err());
        assert!(events(&[("EVENTS_FEED_KEEP_ALIVE_MS", "0")]).is_err());
    }
}
