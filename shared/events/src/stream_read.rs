//! Reading a stream back, from some point to its end, through an ordered
//! consumer: the live feed's catch-up and the relay's check for rows already
//! stored both do it.

use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::message::Info;
use async_nats::jetstream::{Message, stream::Stream};
use futures::StreamExt;

/// How long one stored message may take to arrive.
const READ_WAIT: Duration = Duration::from_secs(2);

/// Reads `stream` through an ordered consumer made with `config`, handing
/// each message and its metadata to `each`, until the last message stored
/// when it was read (true) or until `each` says to stop (false).
///
/// # Errors
/// When the consumer cannot be made, or a message does not arrive within
/// [`READ_WAIT`].
pub(crate) async fn read_to_end(
    stream: &Stream,
    config: pull::OrderedConfig,
    mut each: impl FnMut(&Message, &Info<'_>) -> bool,
) -> anyhow::Result<bool> {
    let consumer = stream.create_consumer(config).await?;
    if consumer.cached_info().num_pending == 0 {
        return Ok(true);
    }
    let mut messages = consumer.messages().await?;
    loop {
        let message = tokio::time::timeout(READ_WAIT, messages.next())
            .await
            .map_err(|_| anyhow::anyhow!("a stored event did not arrive"))?
            .ok_or_else(|| anyhow::anyhow!("the stream ended"))??;
        let info = message.info().map_err(anyhow::Error::msg)?;
        if !each(&message, &info) {
            return Ok(false);
        }
        if info.pending == 0 {
            return Ok(true);
        }
    }
}
