//! The live feed: every event of the shop as Server-Sent Events.
//!
//! While anyone listens, one ephemeral, ordered consumer per producing
//! service's stream (starting at new events) feeds a broadcast channel; each
//! listener gets a receiver. With nobody listening no stream is followed, so
//! the broker delivers nothing to the feed and the service reads nothing: the
//! first listener starts the followers, and a follower stops within
//! [`IDLE_CHECK`] of the last listener going (a listener is gone once its
//! closed connection is found, when an event or a keep-alive is written to
//! it). A listener sees the events published from a moment after it arrived.
//! A listener too slow to keep up skips what it missed (it is told how many)
//! instead of holding the others back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::web::Bytes;
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use futures::StreamExt;
use tokio::sync::broadcast;

use super::broker::{Broker, stream_name};
use super::envelope::CloudEvent;
use crate::health::Lifecycle;

/// Events buffered for a listener that falls behind.
const BUFFER: usize = 1024;
/// Most listeners at once; past it a listener is refused (503).
pub const MAX_LISTENERS: usize = 1000;
/// A comment line this often keeps idle connections (and proxies) open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often a follower with no events to pass on looks whether anyone
/// still listens.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// One event, and its frame ready to be written to listeners.
#[derive(Debug)]
struct Frame {
    event: CloudEvent,
    bytes: Bytes,
}

/// Which events one listener may see (e.g. only its own orders).
pub type Filter = Box<dyn Fn(&CloudEvent) -> bool>;

/// The broadcast of the shop's events to SSE listeners.
#[derive(Clone)]
pub struct Feed {
    sender: broadcast::Sender<Arc<Frame>>,
    lifecycle: Lifecycle,
    followers: Arc<[Follower]>,
}

/// What follows one producer's stream, and whether it is following now.
struct Follower {
    broker: Broker,
    producer: &'static str,
    running: AtomicBool,
}

impl Feed {
    /// The feed of `producers`' streams; none is followed until someone listens.
    pub fn new(broker: &Broker, producers: &[&'static str], lifecycle: &Lifecycle) -> Self {
        let (sender, _) = broadcast::channel(BUFFER);
        let followers = producers
            .iter()
            .map(|producer| Follower {
                broker: broker.clone(),
                producer,
                running: AtomicBool::new(false),
            })
            .collect();
        Self {
            sender,
            lifecycle: lifecycle.clone(),
            followers,
        }
    }

    /// Whether anyone listens (and the service is not draining).
    fn is_heard(&self) -> bool {
        !self.lifecycle.is_draining() && self.sender.receiver_count() > 0
    }

    pub fn is_full(&self) -> bool {
        self.sender.receiver_count() >= MAX_LISTENERS
    }

    /// A `text/event-stream` answer with every event, lasting until the
    /// listener leaves or the service drains.
    pub fn respond(&self) -> HttpResponse {
        self.respond_filtered(Box::new(|_| true))
    }

    /// [`Feed::respond`] with only the events `filter` lets through.
    pub fn respond_filtered(&self, filter: Filter) -> HttpResponse {
        let listener = Listener {
            receiver: self.sender.subscribe(),
            lifecycle: self.lifecycle.clone(),
            filter,
            started: false,
        };
        self.follow_all();
        let body = futures::stream::unfold(listener, |mut listener| async move {
            let chunk = listener.next_chunk().await?;
            Some((Ok::<_, std::convert::Infallible>(chunk), listener))
        });
        HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header(("Cache-Control", "no-cache"))
            // nginx: pass each event on at once rather than buffering the answer.
            .insert_header(("X-Accel-Buffering", "no"))
            .streaming(body)
    }

    /// Starts following every stream not followed yet; called once the new
    /// listener is subscribed, so that a follower stopping now sees it.
    fn follow_all(&self) {
        for index in 0..self.followers.len() {
            if !self.followers[index].running.swap(true, Ordering::SeqCst) {
                actix_web::rt::spawn(follow(self.clone(), index));
            }
        }
    }
}

/// One listener's side of the broadcast.
struct Listener {
    receiver: broadcast::Receiver<Arc<Frame>>,
    lifecycle: Lifecycle,
    filter: Filter,
    started: bool,
}

impl Listener {
    /// What to write next: the reconnection delay first, then events that
    /// pass the filter, a keep-alive comment when idle; `None` at the end.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if !self.started {
            self.started = true;
            return Some(Bytes::from_static(b"retry: 3000\n\n"));
        }
        loop {
            if self.lifecycle.is_draining() {
                return None;
            }
            return Some(
                match tokio::time::timeout(KEEP_ALIVE, self.receiver.recv()).await {
                    Ok(Ok(frame)) if (self.filter)(&frame.event) => frame.bytes.clone(),
                    Ok(Ok(_)) => continue,
                    Ok(Err(broadcast::error::RecvError::Lagged(n))) => Bytes::from(format!(
                        ": {n} events skipped: this listener fell behind\n\n"
                    )),
                    Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                    Err(_) => Bytes::from_static(b": keep-alive\n\n"),
                },
            );
        }
    }
}

/// The SSE frame of `event`: `event:` its type, `id:` its id, `data:` the
/// CloudEvent on one line.
fn frame(event: CloudEvent, json: &str) -> Frame {
    let bytes = Bytes::from(format!(
        "event: {}\nid: {}\ndata: {}\n\n",
        event.event_type, event.id, json
    ));
    Frame { event, bytes }
}

/// Follows one producer's stream while anyone listens, then stops; a
/// listener that arrived as it stopped makes it carry on.
async fn follow(feed: Feed, index: usize) {
    let follower = &feed.followers[index];
    loop {
        follow_while_heard(&feed, follower).await;
        follower.running.store(false, Ordering::SeqCst);
        // A listener subscribed after the last look saw this follower still
        // running and started none: carry on for it.
        if !feed.is_heard() || follower.running.swap(true, Ordering::SeqCst) {
            return;
        }
    }
}

/// Passes the follower's stream on while anyone listens; waits for the
/// stream and starts again after failures.
async fn follow_while_heard(feed: &Feed, follower: &Follower) {
    let name = stream_name(follower.producer);
    // A stream created just after the service starts is followed soon after.
    let mut retry = Duration::from_millis(100);
    while feed.is_heard() {
        match pass_on(feed, &follower.broker, &name).await {
            // It followed the stream until it ended or nobody listened.
            Ok(()) => retry = Duration::from_millis(100),
            Err(e) => {
                tracing::debug!(stream = %name, error = %format_args!("{e:#}"), "the live feed is waiting for its stream");
            }
        }
        if !feed.is_heard() {
            return;
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(Duration::from_secs(5));
    }
}

/// Passes each new event of stream `name` to the listeners, through an
/// ephemeral ordered consumer, until nobody listens or the stream ends.
async fn pass_on(feed: &Feed, broker: &Broker, name: &str) -> anyhow::Result<()> {
    let stream = broker.jetstream().get_stream(name).await?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy: DeliverPolicy::New,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    while feed.is_heard() {
        let Ok(next) = tokio::time::timeout(IDLE_CHECK, messages.next()).await else {
            continue; // nothing new: look again whether anyone listens
        };
        let Some(message) = next else {
            return Ok(());
        };
        let message = message?;
        let Ok(json) = std::str::from_utf8(&message.payload) else {
            continue;
        };
        let Ok(event) = serde_json::from_str::<CloudEvent>(json) else {
            continue;
        };
        // The CloudEvent as published is one line of JSON already.
        let _ = feed.sender.send(Arc::new(frame(event, json.trim())));
    }
    Ok(())
}
