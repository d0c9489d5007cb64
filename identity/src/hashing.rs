//! Where requests hash passwords: a bounded pool in front of argon2.
//!
//! One argon2id computation holds 19 MiB and a core for tens of
//! milliseconds, and every `POST /accounts` and `POST /sessions` runs one
//! before anyone is known. Unbounded, a few dozen anonymous requests at once
//! exhaust the pod's memory. So at most `max_in_flight` computations run at
//! once (default: one per core, which is all the CPU they can use anyway); a
//! request beyond them waits up to `queue_wait` for a slot and is then
//! answered 503 `busy` with `Retry-After`, having cost nothing. Waiting
//! requests hold no hashing memory, and the other routes (`/health`, the
//! JWKS, `/token`) never wait here.
//!
//! The computations run on `max_in_flight` threads of their own rather than
//! on the blocking pool. Memory is why: the allocator keeps a freed 19 MiB
//! block in the arena of the thread that freed it, so hashes spread over the
//! blocking pool's many threads left hundreds of MiB resident even with few
//! at once (measured: 738 MiB after 200 sign-ins at 2 in flight); a few
//! long-lived threads keep at most a block each.
//!
//! The slot is held by the computation itself, not by the request: a client
//! that hangs up mid-hash frees its slot only when the hash is done, so the
//! bound is on work actually running.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, oneshot};

use crate::domain::Password;
use crate::error::Error;
use crate::metrics::IdentityMetrics;
use crate::passwords::{Hasher, Memory};

/// `IDENTITY_HASHING_MAX_IN_FLIGHT` and `IDENTITY_HASHING_QUEUE_MS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingSettings {
    /// Computations at once (at least 1).
    pub max_in_flight: usize,
    /// How long a request waits for a slot before 503.
    pub queue_wait: Duration,
}

impl HashingSettings {
    /// One per core this process may use.
    pub fn default_max_in_flight() -> usize {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    }
}

/// One computation, with the slot it holds, for a hashing thread (which
/// lends it its memory).
type Job = Box<dyn FnOnce(&mut Memory) + Send>;

/// The hasher with the memory of the hashing thread it runs on.
pub struct PooledHasher<'a> {
    hasher: &'a Hasher,
    memory: &'a mut Memory,
}

impl PooledHasher<'_> {
    /// # Errors
    /// As [`Hasher::hash`].
    pub fn hash(&mut self, password: &Password) -> anyhow::Result<String> {
        self.hasher.hash(password, self.memory)
    }

    pub fn verify(&mut self, password: &Password, stored: Option<&str>) -> bool {
        self.hasher.verify(password, stored, self.memory)
    }
}

/// The hasher behind its slots and threads; shared by all workers (clones
/// share both). The threads end when the last clone is dropped.
#[derive(Clone)]
pub struct HashingPool {
    hasher: Arc<Hasher>,
    slots: Arc<Semaphore>,
    jobs: mpsc::Sender<Job>,
    queue_wait: Duration,
    metrics: IdentityMetrics,
}

impl HashingPool {
    /// Starts `settings.max_in_flight` hashing threads.
    ///
    /// # Errors
    /// When a thread cannot be started.
    pub fn new(
        hasher: Hasher,
        settings: HashingSettings,
        metrics: IdentityMetrics,
    ) -> anyhow::Result<Self> {
        let threads = settings.max_in_flight.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("password-hashing-{n}"))
                .spawn(move || hashing_thread(&queue))
                .map_err(|e| anyhow::anyhow!("starting a password hashing thread: {e}"))?;
        }
        Ok(Self {
            hasher: Arc::new(hasher),
            slots: Arc::new(Semaphore::new(threads)),
            jobs,
            queue_wait: settings.queue_wait,
            metrics,
        })
    }

    /// Runs `work` (one argon2 computation) on a hashing thread once a slot
    /// is free.
    ///
    /// # Errors
    /// [`Error::Busy`] when no slot came free within the queue wait (nothing
    /// was computed); `Unexpected` when the hashing threads are gone.
    pub async fn run<T, F>(&self, work: F) -> Result<T, Error>
    where
        F: FnOnce(&mut PooledHasher<'_>) -> T + Send + 'static,
        T: Send + 'static,
    {
        let acquire = self.slots.clone().acquire_owned();
        let Ok(Ok(slot)) = actix_web::rt::time::timeout(self.queue_wait, acquire).await else {
            self.metrics.hash_refused();
            return Err(Error::Busy);
        };
        let hasher = self.hasher.clone();
        let metrics = self.metrics.clone();
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _slot = slot;
            let _in_flight = metrics.hash_started();
            let mut hasher = PooledHasher {
                hasher: &hasher,
                memory,
            };
            // The request may have gone: then nobody wants the result.
            let _ = done.send(work(&mut hasher));
        });
        self.jobs
            .send(job)
            .map_err(|_| anyhow::anyhow!("the password hashing threads are gone"))?;
        result
            .await
            .map_err(|_| anyhow::anyhow!("a password hashing thread failed").into())
    }
}

/// Runs jobs until every sender is gone, each in this thread's one
/// [`Memory`]. As many threads as slots, so a job sent (it holds a slot)
/// finds a thread free.
fn hashing_thread(queue: &Mutex<mpsc::Receiver<Job>>) {
    let mut memory = Memory::default();
    loop {
        // The lock is held only while taking a job, never while running one.
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        match job {
            Ok(job) => job(&mut memory),
            Err(mpsc::RecvError) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    use super::*;

    fn pool(max_in_flight: usize, queue_wait: Duration) -> HashingPool {
        let metrics = IdentityMetrics::register(&mut shared_http::metrics::Registry::default());
        let settings = HashingSettings {
            max_in_flight,
            queue_wait,
        };
        HashingPool::new(Hasher::new().expect("hasher"), settings, metrics).expect("threads")
    }

    #[actix_web::test]
    async fn never_more_than_the_limit_run_at_once() {
        let pool = pool(2, Duration::from_secs(60));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let runs = (0..12).map(|_| {
            let (running, most) = (running.clone(), most.clone());
            pool.run(move |_| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // Long enough for the others to pile up behind the slots.
                assert!(
                    std::thread::current()
                        .name()
                        .is_some_and(|n| n.starts_with("password-hashing")),
                    "on a hashing thread"
                );
                std::thread::sleep(Duration::from_millis(20));
                running.fetch_sub(1, Ordering::SeqCst);
            })
        });
        for result in futures::future::join_all(runs).await {
            result.expect("every run gets a slot within the wait");
        }
        let most = most.load(Ordering::SeqCst);
        assert!((1..=2).contains(&most), "{most} ran at once");
    }

    #[actix_web::test]
    async fn a_request_that_finds_no_slot_in_time_is_refused_unrun() {
        let pool = pool(1, Duration::ZERO);
        let (release, held) = mpsc::channel::<()>();
        let (started, running) = mpsc::channel::<()>();
        let holder = actix_web::rt::spawn({
            let pool = pool.clone();
            async move {
                pool.run(move |_| {
                    let _ = started.send(());
                    let _ = held.recv();
                })
                .await
            }
        });
        actix_web::web::block(move || running.recv())
            .await
            .expect("the blocking pool")
            .expect("the first run started");
        let refused = pool.run(|_| unreachable!("no slot was free")).await;
        assert!(matches!(refused, Err(Error::Busy)));
        release.send(()).expect("the holder waits");
        holder
            .await
            .expect("the holder ends")
            .expect("the holder ran");
        pool.run(|_| ()).await.expect("the slot is free again");
    }
}
