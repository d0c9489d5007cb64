//! The live feed: every event of the shop as Server-Sent Events.
//!
//! While anyone listens, one ephemeral, ordered consumer per producing
//! service's stream (starting at new events) feeds a broadcast channel; each
//! listener gets a receiver. With nobody listening no stream is followed, so
//! the broker delivers nothing to the feed and the service reads nothing: the
//! first listener starts the followers, and a follower stops within
//! [`IDLE_CHECK`] once nobody has listened for [`LINGER`] (a listener is gone
//! once its closed connection is found, when an event or a keep-alive is
//! written to it; one is written at least every keep-alive period). A
//! listener sees the events published from a moment after it arrived, and
//! first, when it names the last event it saw (`Last-Event-ID`), the later
//! ones: from the feed's memory (the last [`BUFFER`]) when this process
//! passed that event on, else read back from the streams while they hold
//! them (`catch_up`: after a restart, on another replica, after nobody
//! listened), then the live ones without a gap or a repeat; a comment says
//! when events may have been skipped. A listener too slow to keep up skips
//! what it missed (it is told how many) instead of holding the others back.
//!
//! Each listener is admitted first ([`Feed::admit`]): at most
//! [`MAX_LISTENERS`] in all and `EVENTS_STREAMS_PER_CALLER` per caller. What
//! it is shown of each event is the service's business ([`View`]): the whole
//! event, its public form (the service's [`PublicForm`], computed once per
//! event), or nothing. A stream may end at a given time (its token's expiry).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use actix_web::HttpResponse;
use actix_web::web::Bytes;
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use futures::StreamExt;
use tokio::sync::broadcast;
use tokio::time::Instant;

mod catch_up;

pub use catch_up::{BadLastEventId, LastEventId};

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
    /// Where it is stored: its follower's index and its stream sequence.
    stored: Stored,
    whole: Bytes,
    /// The frame of the event's public form; `None`: it has none.
    public: Option<Bytes>,
}

/// Where an event is stored: which producer's stream (the index of its
/// follower) and its sequence there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stored {
    stream: usize,
    sequence: u64,
}

impl Frame {
    /// The frames of `event` (`json`: the CloudEvent as published, one line).
    fn new(public_form: PublicForm, stored: Stored, event: CloudEvent, json: &str) -> Self {
        let public = public_form(&event).map(|form| frame_bytes(&event, &form.to_string()));
        let whole = frame_bytes(&event, json);
        Self {
            event,
            stored,
            whole,
            public,
        }
    }
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
    pub last_event_id: Option<LastEventId>,
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
    /// Catch-ups from the streams running at once (see `catch_up`).
    catch_ups: Arc<tokio::sync::Semaphore>,
}

/// What follows one producer's stream, whether it is following now,
/// whether its consumer is attached (every event stored from then on is
/// passed on), and where it resumes after a failure.
struct Follower {
    broker: Broker,
    producer: &'static str,
    running: AtomicBool,
    attached: AtomicBool,
    /// The stream sequence after the last one passed on (0: none yet): a
    /// consumer made again after a failure starts there, so the recent
    /// events stay without a gap.
    resume: AtomicU64,
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
                attached: AtomicBool::new(false),
                resume: AtomicU64::new(0),
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
            catch_ups: Arc::new(tokio::sync::Semaphore::new(catch_up::AT_ONCE)),
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
        // Subscribed before anything is read back: see `catch_up` for the
        // hand-over. The recent events answer a listener that comes back to
        // this process at once; the streams any other.
        let (receiver, backlog, catch_up) = {
            let recent = lock(&self.recent);
            let (backlog, catch_up) = match listen.last_event_id {
                Some(id) => match after(&recent, id.as_str()) {
                    Some(backlog) => (backlog, None),
                    None => (VecDeque::new(), Some((self.clone(), id))),
                },
                None => (VecDeque::new(), None),
            };
            (self.sender.subscribe(), backlog, catch_up)
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
            catch_up,
            reached: Vec::new(),
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

    /// Passes `event` (its JSON as published, stored at `stored`) on to the
    /// listeners, and keeps it among the recent ones.
    fn pass(&self, stored: Stored, event: CloudEvent, json: &str) {
        let frame = Arc::new(Frame::new(self.public_form, stored, event, json));
        let mut recent = lock(&self.recent);
        if recent.len() >= BUFFER {
            recent.pop_front();
        }
        recent.push_back(frame.clone());
        let _ = self.sender.send(frame);
    }
}

/// The frames of `recent` after the one with event id `id`; `None` when it
/// is not among them (too old, or passed on before this process started).
fn after(recent: &VecDeque<Arc<Frame>>, id: &str) -> Option<VecDeque<Arc<Frame>>> {
    recent
        .iter()
        .position(|frame| frame.event.id == id)
        .map(|at| recent.iter().skip(at + 1).cloned().collect())
}

/// Written to a listener whose `Last-Event-ID` no stream holds any more (or
/// an id the shop never sent), or who missed more than the catch-up reads.
const SKIPPED: &str = concat!(
    ": events may have been skipped: the last event id is not held any more, ",
    "or too many were missed\n\n"
);

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
    /// Events after its `Last-Event-ID`, written before new ones.
    backlog: VecDeque<Arc<Frame>>,
    /// The catch-up from the streams still to run (its `Last-Event-ID` is
    /// not among the recent events).
    catch_up: Option<(Feed, LastEventId)>,
    /// Per follower, the last stream sequence the catch-up read: a live
    /// event stored there or before is not written again.
    reached: Vec<Option<u64>>,
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
        if let Some((feed, id)) = self.catch_up.take() {
            match catch_up::read(&feed, &id).await {
                Some(missed) => {
                    self.backlog = missed.frames.into();
                    self.reached = missed.reached;
                }
                None => return Some(Bytes::from(SKIPPED)),
            }
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
                    if !self.caught_up_with(&frame)
                        && let Some(bytes) = self.shown(&frame)
                    {
                        return Some(bytes);
                    }
                    // Hidden, or written by the catch-up: the keep-alive's
                    // deadline stands.
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

    /// Whether the catch-up read `frame`'s event already.
    fn caught_up_with(&self, frame: &Frame) -> bool {
        self.reached
            .get(frame.stored.stream)
            .copied()
            .flatten()
            .is_some_and(|reached| frame.stored.sequence <= reached)
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
        follow_while_heard(&feed, index).await;
        // Nobody listens: what is stored from now on is not passed on, so
        // the recent events end here, and a listener coming back is caught
        // up from the streams. Forgotten before the follower is seen
        // stopped: a listener subscribed before this still has a follower
        // that resumes without a gap (below).
        lock(&feed.recent).clear();
        follower.running.store(false, Ordering::SeqCst);
        // A listener subscribed after the last look saw this follower still
        // running and started none: carry on for it.
        if !feed.is_heard() || follower.running.swap(true, Ordering::SeqCst) {
            // The next start is at new events: nobody needs the ones between.
            follower.resume.store(0, Ordering::SeqCst);
            return;
        }
    }
}

/// Passes the follower's stream on while anyone listens; waits for the
/// stream and starts again after failures.
async fn follow_while_heard(feed: &Feed, index: usize) {
    let follower = &feed.followers[index];
    let name = stream_name(follower.producer);
    // A stream created just after the service starts is followed soon after.
    let mut retry = Duration::from_millis(100);
    while feed.is_heard() {
        match pass_on(feed, index, &name).await {
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

/// Passes each new event of stream `name` (follower `index`'s) to the
/// listeners, through an ephemeral ordered consumer, until nobody listens or
/// the stream ends.
async fn pass_on(feed: &Feed, index: usize, name: &str) -> anyhow::Result<()> {
    let follower = &feed.followers[index];
    let stream = follower.broker.jetstream().get_stream(name).await?;
    let deliver_policy = match follower.resume.load(Ordering::SeqCst) {
        0 => DeliverPolicy::New,
        start_sequence => DeliverPolicy::ByStartSequence { start_sequence },
    };
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let _attached = Attached::new(&follower.attached);
    while feed.is_heard() {
        let Ok(next) = tokio::time::timeout(IDLE_CHECK, messages.next()).await else {
            continue; // nothing new: look again whether anyone listens
        };
        let Some(message) = next else {
            return Ok(());
        };
        let message = message?;
        let sequence = message.info().map_err(anyhow::Error::msg)?.stream_sequence;
        follower.resume.store(sequence + 1, Ordering::SeqCst);
        let Some((event, json)) = parse(&message.payload) else {
            continue;
        };
        feed.pass(
            Stored {
                stream: index,
                sequence,
            },
            event,
            json,
        );
    }
    Ok(())
}

/// A stored message as a CloudEvent and its JSON (one line, as published);
/// `None` for anything else.
fn parse(payload: &[u8]) -> Option<(CloudEvent, &str)> {
    let json = std::str::from_utf8(payload).ok()?.trim();
    let event = serde_json::from_str::<CloudEvent>(json).ok()?;
    Some((event, json))
}

/// A follower's consumer attached, for as long as this lives.
struct Attached<'a>(&'a AtomicBool);

impl<'a> Attached<'a> {
    fn new(flag: &'a AtomicBool) -> Self {
        flag.store(true, Ordering::SeqCst);
        Self(flag)
    }
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u32) -> Arc<Frame> {
        let event = CloudEvent::new("test", "shop.test.happened", "s", &n).expect("an event");
        let stored = Stored {
            stream: 0,
            sequence: u64::from(n) + 1,
        };
        Arc::new(Frame::new(|_| None, stored, event, "{}"))
    }

    #[test]
    fn a_listener_coming_back_gets_what_followed_its_last_event_or_nothing() {
        let recent: VecDeque<_> = (0..5).map(frame).collect();
        let ids = |frames: VecDeque<Arc<Frame>>| -> Vec<String> {
            frames.iter().map(|f| f.event.id.clone()).collect()
        };
        let all = ids(recent.clone());
        let after = |id: &str| after(&recent, id).map(ids);
        assert_eq!(after(&all[1]), Some(all[2..].to_vec()));
        assert_eq!(after(&all[4]), Some(Vec::new()));
        assert_eq!(after("not-held"), None);
    }
}
