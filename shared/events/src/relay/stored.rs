//! Reading back which of some message ids a stream holds: what a relay does
//! before it publishes rows that may have been stored longer ago than the
//! stream's duplicate window (see [`super::Relay`]'s fresh chain).

use std::collections::HashSet;

use async_nats::jetstream::Context;
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use time::OffsetDateTime;

use crate::stream_read::read_to_end;

/// What a stream held when it was read from some moment to its end.
pub(super) struct Stored {
    /// The wanted ids it holds.
    pub ids: HashSet<String>,
    /// Its last sequence as it was read (0: it is empty).
    pub last_sequence: u64,
}

/// Which of `wanted` the stream `stream` stored from `from` on (the broker's
/// clock), read to its end through an ordered consumer of headers only.
///
/// # Errors
/// When the stream cannot be read.
pub(super) async fn stored_since(
    jetstream: &Context,
    stream: &str,
    from: OffsetDateTime,
    wanted: &HashSet<&str>,
) -> anyhow::Result<Stored> {
    let stream = jetstream.get_stream(stream).await?;
    // Read before the consumer exists: when it finds nothing pending, nothing
    // was stored after `from` up to now, so this is still the last sequence.
    let mut last_sequence = stream.cached_info().state.last_sequence;
    let config = pull::OrderedConfig {
        deliver_policy: DeliverPolicy::ByStartTime { start_time: from },
        headers_only: true,
        ..Default::default()
    };
    let mut ids = HashSet::new();
    read_to_end(&stream, config, |message, info| {
        last_sequence = info.stream_sequence;
        let id = message
            .headers
            .as_ref()
            .and_then(|headers| headers.get("Nats-Msg-Id"))
            .map(|id| id.as_str());
        if let Some(id) = id.filter(|id| wanted.contains(id)) {
            ids.insert(id.to_owned());
        }
        true
    })
    .await?;
    Ok(Stored { ids, last_sequence })
}
