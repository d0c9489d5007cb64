//! The live feed: every event of the shop as Server-Sent Events.
//!
//! While anyone listens, one ephemeral, ordered consumer per producing
//! service's stream (starting at new events) feeds a broadcast channel; each
//! listener gets a receiver. With nobody listening no stream is followed, so
//! the broker delivers nothing to the feed and the service reads nothing: the
//! first listener starts the followers, and a follower stops within
//! [`IDLE_CHECK`] once nobody has listened for [`LINGER`] (a listener is gone
//! once its closed connection is found, when an event or a keep-alive is
//! written to it). A listener sees the events published from a moment after
//! it arrived, and first, when it names the last event it saw
//! (`Last-Event-ID`), the later ones the feed still holds (the last
//! [`BUFFER`]): a listener that reconnects at once (its stream ended with its
//! token) misses nothing. A listener too slow to keep up skips what it missed
//! (it is told how many) instead of holding the others back.
//!
//! Each listener is admitted first ([`Feed::admit`]): at most
//! [`MAX_LISTENERS`] in all and `EVENTS_STREAMS_PER_CALLER` per caller. What
//! it is shown of each event is the service's business ([`View`]): the whole
//! event, its public form (the service's [`PublicForm`], computed once per
//! event), or nothing. A stream may end at a given time (its token's expiry).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use actix_web::HttpResponse;
use actix_web::web::Bytes;
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use futures::StreamExt;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::broker::{Broker, stream_name};
use super::envelope::CloudEvent;
use shared_http::health::Lifecycle;
use shared_rate_limit::Key;

/// Events buffered for a listener that falls behind, and recent events kept
/// for listeners that come back (`Last-Event-ID`).
const BUFFER: usize = 1024;
/// Most listeners at once; past it a listener is refused (503).
pub const MAX_LISTENERS: usize = 1000;
/// How often a follower with no events to pass on looks whether anyone
/// still listens.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// How long the streams are still followed after the last listener left:
/// a listener reconnecting within it (its token expired, its connection
/// dropped) finds the events it missed among the recent ones.
const LINGER: Duration = Duration::from_secs(5);

/// One event, and its frames ready to be written to listeners.
#[derive(Debug)]
struct Frame {
    event: CloudEvent,
    whole: Bytes,
    /// The frame of the event's public form; `None`: it has none.
    public: Option<Bytes>,
}

/// How one listener is shown one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    Whole,
    /// Its [`PublicForm`] (nothing when it has none).
    Public,
    Hidden,
}

/// What one listener is shown of each event.
pub type View = Box<dyn Fn(&CloudEvent) -> Shown>;

/// The public form of an event (what a listener shown [`Shown::Public`]
/// gets), as the CloudEvent JSON to send; `None` when it has none.
pub type PublicForm = fn(&CloudEvent) -> Option<serde_json::Value>;

/// Why a listener was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The feed has [`MAX_LISTENERS`].
    Full,
    /// This caller holds as many streams as one caller may.
    CallerFull,
}

/// Who listens: how many in all and per caller, and when the last one left.
#[derive(Debug, Default)]
struct Listeners {
    total: usize,
    per_caller: HashMap<Key, usize>,
    last_left: Option<Instant>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data stays consistent whatever panicked while holding it: counts
    // and a queue, each changed in one step.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A listener's place in the feed, given back when dropped (when its
/// stream ends or its connection is found closed).
pub struct Admission {
    caller: Option<Key>,
    listeners: Arc<Mutex<Listeners>>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut listeners = lock(&self.listeners);
        listeners.total = listeners.total.saturating_sub(1);
        listeners.last_left = Some(Instant::now());
        if let Some(caller) = self.caller.take()
            && let Some(count) = listeners.per_caller.get_mut(&caller)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                listeners.per_caller.remove(&caller);
            }
        }
    }
}

/// One listener's request: its admission, what it is shown, the last event
/// it saw, and when its stream ends (`None`: when it leaves).
pub struct Listen {
    pub admission: Admission,
    pub view: View,
    pub last_event_id: Option<String>,
    pub ends_at: Option<SystemTime>,
}

/// The broadcast of the shop's events to SSE listeners.
#[derive(Clone)]
pub struct Feed {
    sender: broadcast::Sender<Arc<Frame>>,
    /// The last [`BUFFER`] events; locked while an event is sent, so that a
    /// listener subscribes and copies them without a gap or a repeat.
    recent: Arc<Mutex<VecDeque<Arc<Frame>>>>,
    listeners: Arc<Mutex<Listeners>>,
    per_caller: usize,
    /// The longest a listener goes without a write (`EVENTS_FEED_KEEP_ALIVE_MS`).
    keep_alive: Duration,
    public_form: PublicForm,
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
    /// The feed of `producers`' streams; none is followed until someone
    /// listens. Each caller holds at most the broker's `streams_per_caller`.
    pub fn new(
        broker: &Broker,
        producers: &[&'static str],
        lifecycle: &Lifecycle,
        public_form: PublicForm,
    ) -> Self {
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
            recent: Arc::default(),
            listeners: Arc::default(),
            per_caller: broker.config().streams_per_caller,
            keep_alive: broker.config().feed_keep_alive,
            public_form,
            lifecycle: lifecycle.clone(),
            followers,
        }
    }

    /// Whether anyone listens, or did a moment ago (and the service is not
    /// draining).
    fn is_heard(&self) -> bool {
        if self.lifecycle.is_draining() {
            return false;
        }
        self.sender.receiver_count() > 0
            || lock(&self.listeners)
                .last_left
                .is_some_and(|left| left.elapsed() < LINGER)
    }

    /// A place for one more listener of `caller` (`None`: a caller not told
    /// apart, counted in the total only).
    ///
    /// # Errors
    /// [`Refused`] when the feed or this caller's share of it is full.
    pub fn admit(&self, caller: Option<Key>) -> Result<Admission, Refused> {
        let mut listeners = lock(&self.listeners);
        if listeners.total >= MAX_LISTENERS {
            return Err(Refused::Full);
        }
        if let Some(caller) = &caller {
            let count = listeners.per_caller.entry(caller.clone()).or_default();
            if *count >= self.per_caller {
                return Err(Refused::CallerFull);
            }
            *count += 1;
        }
        listeners.total += 1;
        Ok(Admission {
            caller,
            listeners: self.listeners.clone(),
        })
    }

    /// A `text/event-stream` answer: the events after `last_event_id` the
    /// feed still holds, then each new one, as the listener's view shows
    /// them, until the listener leaves, its stream ends or the service drains.
    pub fn respond(&self, listen: Listen) -> HttpResponse {
        let (receiver, backlog) = {
            let recent = lock(&self.recent);
            let backlog = match &listen.last_event_id {
                Some(id) => after(&recent, id),
                None => VecDeque::new(),
            };
            (self.sender.subscribe(), backlog)
        };
        let ends_at = listen.ends_at.map(|at| {
            let left = at
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            Instant::now() + left
        });
        let listener = Listener {
            receiver,
            backlog,
            lifecycle: self.lifecycle.clone(),
            view: listen.view,
            keep_alive: self.keep_alive,
            keep_alive_at: Instant::now() + self.keep_alive,
            ends_at,
            state: State::Starting,
            _admission: listen.admission,
        };
        self.follow_all();
        let body = futures::stream::unfold(listener, |mut listener| async move {
            let chunk = listener.next().await?;
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

    /// Passes `event` (its JSON as published) on to the listeners, and keeps
    /// it among the recent ones.
    fn pass(&self, event: CloudEvent, json: &str) {
        let public = (self.public_form)(&event).map(|form| frame_bytes(&event, &form.to_string()));
        let whole = frame_bytes(&event, json);
        let frame = Arc::new(Frame {
            event,
            whole,
            public,
        });
        let mut recent = lock(&self.recent);
        if recent.len() >= BUFFER {
            recent.pop_front();
        }
        recent.push_back(frame.clone());
        let _ = self.sender.send(frame);
    }
}

/// The frames of `recent` after the one with event id `id`; none when it is
/// not among them (too old, or not an event of this feed).
fn after(recent: &VecDeque<Arc<Frame>>, id: &str) -> VecDeque<Arc<Frame>> {
    recent
        .iter()
        .position(|frame| frame.event.id == id)
        .map(|at| recent.iter().skip(at + 1).cloned().collect())
        .unwrap_or_default()
}

/// Where a listener's stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Starting,
    Open,
    /// Its end time came: a last comment has been written.
    Ended,
}

/// One listener's side of the broadcast.
struct Listener {
    receiver: broadcast::Receiver<Arc<Frame>>,
    /// Recent events after its `Last-Event-ID`, written before new ones.
    backlog: VecDeque<Arc<Frame>>,
    lifecycle: Lifecycle,
    view: View,
    keep_alive: Duration,
    /// When a keep-alive is due: a keep-alive period after the last write.
    keep_alive_at: Instant,
    ends_at: Option<Instant>,
    state: State,
    /// Held for the stream's length: dropping it gives the place back.
    _admission: Admission,
}

impl Listener {
    /// The next chunk to write, and from it the deadline of the next
    /// keep-alive: measured from the last write, not from the last event
    /// received, so that events this listener may not see (which write
    /// nothing) cannot hold its keep-alives back. A write is also how a
    /// closed connection is found, so a listener that left is noticed
    /// within a keep-alive period whatever flows.
    async fn next(&mut self) -> Option<Bytes> {
        let chunk = self.next_chunk().await?;
        self.keep_alive_at = Instant::now() + self.keep_alive;
        Some(chunk)
    }

    /// What to write next: the reconnection delay first, then the backlog,
    /// then new events the view shows, a keep-alive comment when nothing was
    /// written for a keep-alive period, a last comment at the end time;
    /// `None` at the end.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        match self.state {
            State::Starting => {
                self.state = State::Open;
                return Some(Bytes::from_static(b"retry: 3000\n\n"));
            }
            State::Ended => return None,
            State::Open => {}
        }
        while let Some(frame) = self.backlog.pop_front() {
            if let Some(bytes) = self.shown(&frame) {
                return Some(bytes);
            }
        }
        loop {
            if self.lifecycle.is_draining() {
                return None;
            }
            let wake = match self.ends_at {
                Some(end) if end <= Instant::now() => {
                    self.state = State::Ended;
                    return Some(Bytes::from_static(
                        b": the token expired: reconnect with a fresh one\n\n",
                    ));
                }
                Some(end) => end.min(self.keep_alive_at),
                None => self.keep_alive_at,
            };
            match tokio::time::timeout_at(wake, self.receiver.recv()).await {
                Ok(Ok(frame)) => {
                    if let Some(bytes) = self.shown(&frame) {
                        return Some(bytes);
                    }
                    // Hidden: the keep-alive's deadline stands.
                }
                Ok(Err(broadcast::error::RecvError::Lagged(n))) => {
                    return Some(Bytes::from(format!(
                        ": {n} events skipped: this listener fell behind\n\n"
                    )));
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                // The end time came: the loop writes the last comment.
                Err(_) if self.ends_at.is_some_and(|end| end <= Instant::now()) => {}
                Err(_) => return Some(Bytes::from_static(b": keep-alive\n\n")),
            }
        }
    }

    /// The frame this listener is shown of `frame`'s event, if any.
    fn shown(&self, frame: &Frame) -> Option<Bytes> {
        match (self.view)(&frame.event) {
            Shown::Whole => Some(frame.whole.clone()),
            Shown::Public => frame.public.clone(),
            Shown::Hidden => None,
        }
    }
}

/// The SSE frame of `event`: `event:` its type, `id:` its id, `data:` the
/// CloudEvent (`json`, the whole event or its public form) on one line.
fn frame_bytes(event: &CloudEvent, json: &str) -> Bytes {
    Bytes::from(format!(
        "event: {}\nid: {}\ndata: {}\n\n",
        event.event_type, event.id, json
    ))
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
        feed.pass(event, json.trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u32) -> Arc<Frame> {
        let event = CloudEvent::new("test", "shop.test.happened", "s", &n).expect("an event");
        let whole = frame_bytes(&event, "{}");
        Arc::new(Frame {
            event,
            whole,
            public: None,
        })
    }

    #[test]
    fn a_listener_coming_back_gets_what_followed_its_last_event_or_nothing() {
        let recent: VecDeque<_> = (0..5).map(frame).collect();
        let ids = |frames: VecDeque<Arc<Frame>>| -> Vec<String> {
            frames.iter().map(|f| f.event.id.clone()).collect()
        };
        let all = ids(recent.clone());
        assert_eq!(ids(after(&recent, &all[1])), all[2..]);
        assert_eq!(ids(after(&recent, &all[4])), Vec::<String>::new());
        assert_eq!(ids(after(&recent, "not-held")), Vec::<String>::new());
    }
}
