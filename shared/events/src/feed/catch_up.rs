//! A returning listener's catch-up: the events after its `Last-Event-ID`
//! that the streams still hold, read from JetStream (not from the feed's
//! memory, which knows only what passed while someone listened to this
//! process).
//!
//! Event ids are UUIDv7, so an id tells when its event was made. Each
//! producer's stream is read, through an ordered consumer, from [`MARGIN`]
//! before that moment (an event is stored after it is made; the margin
//! allows for clocks that differ between hosts) to its end. The stream that
//! holds the id gives what was stored after it; the others give what was
//! stored later than it (the broker's clock: the order in which the live
//! feed passes events on, up to the followers' small lags). The frames come
//! out in the order they were stored.
//!
//! The hand-over to the live broadcast, without a gap or a repeat: the
//! listener subscribes to the broadcast before the catch-up begins, and each
//! stream is read only once its follower is attached, so every event stored
//! in it from then on reaches the listener live. Reading the stream to its
//! end after that leaves no gap: an event stored after the end read came, or
//! comes, live. What comes live that the catch-up has read already is
//! recognised by its stream sequence ([`Missed::reached`]) and dropped.
//!
//! The catch-up is bounded: at most [`MOST`] events read per stream, and
//! [`AT_ONCE`] catch-ups at a time (a listener that waited [`TURN_WAIT`] for
//! its turn goes on without). A listener that missed more, or whose event no stream holds any more (aged
//! out, or an id the shop never sent), is told that events may have been
//! skipped, and goes on with the live events.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::context::GetStreamErrorKind;
use time::OffsetDateTime;

use super::{Feed, Frame, Stored, parse};
use crate::broker::stream_name;
use crate::stream_read::read_to_end;

/// Most events read from one stream for one listener.
pub(super) const MOST: usize = 1000;
/// How long before its id's time an event may have been stored.
const MARGIN: Duration = Duration::from_secs(5);
/// How long a stream's follower may take to attach before the catch-up
/// gives up (events may have been skipped).
const ATTACH_WAIT: Duration = Duration::from_secs(5);

/// Catch-ups running at once: after a restart every listener comes back
/// with its `Last-Event-ID` at the same moment.
pub(super) const AT_ONCE: usize = 16;
/// How long a catch-up waits for its turn before the listener is told that
/// events may have been skipped.
const TURN_WAIT: Duration = Duration::from_secs(5);

/// The longest `Last-Event-ID` taken (a UUID is 36 characters).
const MAX_ID_LEN: usize = 64;

/// A `Last-Event-ID` of plausible shape: at most [`MAX_ID_LEN`] ASCII
/// letters, digits, `-`, `_`, `.` or `:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastEventId(String);

/// Why a `Last-Event-ID` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Last-Event-ID is at most {MAX_ID_LEN} letters, digits, '-', '_', '.' or ':' (an event's id)"
)]
pub struct BadLastEventId;

impl LastEventId {
    /// # Errors
    /// [`BadLastEventId`] when `raw` is too long or holds other characters.
    pub fn parse(raw: &str) -> Result<Self, BadLastEventId> {
        let fits = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
        if raw.is_empty() || raw.len() > MAX_ID_LEN || !raw.chars().all(fits) {
            return Err(BadLastEventId);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// When its event was made, when it is a UUIDv7 (as every event's id).
    fn made_at(&self) -> Option<OffsetDateTime> {
        let id = uuid::Uuid::parse_str(&self.0).ok()?;
        if id.get_version() != Some(uuid::Version::SortRand) {
            return None;
        }
        let (seconds, nanos) = id.get_timestamp()?.to_unix();
        let at = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
        OffsetDateTime::from_unix_timestamp_nanos(at).ok()
    }
}

/// What a listener missed, and where each stream was read to.
pub(super) struct Missed {
    pub frames: Vec<Arc<Frame>>,
    /// Per follower: the last stream sequence read (`None`: none read).
    pub reached: Vec<Option<u64>>,
}

/// One event read back, and when it was stored.
struct Read {
    frame: Arc<Frame>,
    stored_at: OffsetDateTime,
}

/// One stream read from the margin on.
enum StreamRead {
    /// Its events, to its end.
    Whole(Vec<Read>),
    /// More than [`MOST`].
    TooMany,
}

/// The events after `id` the streams hold; `None` when they do not hold
/// `id`, or more than the bound was missed, or a stream could not be read:
/// events may have been skipped.
pub(super) async fn read(feed: &Feed, id: &LastEventId) -> Option<Missed> {
    let from = id.made_at()?.checked_sub(MARGIN.try_into().ok()?)?;
    let _turn = tokio::time::timeout(TURN_WAIT, feed.catch_ups.acquire())
        .await
        .ok()?
        .ok()?;
    let mut streams = Vec::with_capacity(feed.followers.len());
    for index in 0..feed.followers.len() {
        match read_stream(feed, index, from).await {
            Ok(StreamRead::Whole(events)) => streams.push(events),
            Ok(StreamRead::TooMany) => return None,
            Err(e) => {
                tracing::warn!(error = %format_args!("{e:#}"), "a live-feed catch-up could not read a stream");
                return None;
            }
        }
    }
    after(&streams, id.as_str())
}

/// The events of `streams` after the one with id `id` (see the module's
/// doc), in the order they were stored; `None` when no stream holds it.
fn after(streams: &[Vec<Read>], id: &str) -> Option<Missed> {
    let (holder, at) = streams.iter().enumerate().find_map(|(index, events)| {
        let at = events.iter().position(|read| read.frame.event.id == id)?;
        Some((index, at))
    })?;
    let since = streams[holder][at].stored_at;
    let mut missed: Vec<&Read> = streams
        .iter()
        .enumerate()
        .flat_map(|(index, events)| {
            events
                .iter()
                .enumerate()
                .filter(move |(k, read)| {
                    if index == holder {
                        *k > at
                    } else {
                        read.stored_at > since
                    }
                })
                .map(|(_, read)| read)
        })
        .collect();
    // Stable: a stream's own events keep their order.
    missed.sort_by_key(|read| read.stored_at);
    let reached = streams
        .iter()
        .map(|events| events.last().map(|read| read.frame.stored.sequence))
        .collect();
    Some(Missed {
        frames: missed.into_iter().map(|read| read.frame.clone()).collect(),
        reached,
    })
}

/// Follower `index`'s stream from `from` to its end, read once the follower
/// is attached; nothing when the stream does not exist.
async fn read_stream(
    feed: &Feed,
    index: usize,
    from: OffsetDateTime,
) -> anyhow::Result<StreamRead> {
    let follower = &feed.followers[index];
    let stream = match follower
        .broker
        .jetstream()
        .get_stream(stream_name(follower.producer))
        .await
    {
        Ok(stream) => stream,
        Err(e) if is_stream_not_found(e.kind()) => return Ok(StreamRead::Whole(Vec::new())),
        Err(e) => return Err(e.into()),
    };
    wait_attached(feed, index).await?;
    let config = pull::OrderedConfig {
        deliver_policy: DeliverPolicy::ByStartTime { start_time: from },
        ..Default::default()
    };
    let mut events = Vec::new();
    let whole = read_to_end(&stream, config, |message, info| {
        if let Some((event, json)) = parse(&message.payload) {
            let stored = Stored {
                stream: index,
                sequence: info.stream_sequence,
            };
            let frame = Arc::new(Frame::new(feed.public_form, stored, event, json));
            events.push(Read {
                frame,
                stored_at: info.published,
            });
        }
        events.len() <= MOST
    })
    .await?;
    Ok(if whole {
        StreamRead::Whole(events)
    } else {
        StreamRead::TooMany
    })
}

fn is_stream_not_found(kind: GetStreamErrorKind) -> bool {
    matches!(kind, GetStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND)
}

/// Waits until follower `index` is attached (the listener arrived with it
/// stopped, or it is starting again).
async fn wait_attached(feed: &Feed, index: usize) -> anyhow::Result<()> {
    let attached = &feed.followers[index].attached;
    let deadline = tokio::time::Instant::now() + ATTACH_WAIT;
    while !attached.load(Ordering::SeqCst) {
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("the live feed's follower did not attach");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_event_ids_of_the_wrong_shape_are_refused() {
        let id = uuid::Uuid::now_v7().to_string();
        assert!(LastEventId::parse(&id).is_ok());
        assert!(LastEventId::parse("evt-1:2.3_4").is_ok());
        for bad in [
            "",
            "a b",
            "é",
            "a\u{0}",
            "<script>",
            &"a".repeat(MAX_ID_LEN + 1),
        ] {
            assert_eq!(LastEventId::parse(bad), Err(BadLastEventId), "{bad:?}");
        }
    }

    #[test]
    fn only_a_uuid_v7_tells_when_its_event_was_made() {
        let id = LastEventId::parse(&uuid::Uuid::now_v7().to_string()).expect("fits");
        let made = id.made_at().expect("a v7");
        assert!((OffsetDateTime::now_utc() - made).whole_seconds().abs() < 60);
        let v4 = LastEventId::parse(&uuid::Uuid::new_v4().to_string()).expect("fits");
        assert_eq!(v4.made_at(), None);
        assert_eq!(LastEventId::parse("evt-1").expect("fits").made_at(), None);
    }
}
