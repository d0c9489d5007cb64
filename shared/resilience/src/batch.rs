//! Calls made at the same moment, sent as one: "smart batching".
//!
//! A caller [`Batcher::submit`]s one item and waits for its own answer. The
//! batcher sends whatever is waiting, as one batch, as soon as one of its
//! `in_flight` slots is free. Nothing waits for a batch to fill: under light
//! traffic every item goes alone and at once, exactly as a direct call
//! would. Only when items arrive faster than batches come back do they queue
//! behind the batches in flight, and then they leave together, so the cost
//! of one call is shared by all of them. The busier it is, the larger the
//! batches, and the added wait is never more than one batch's round trip.
//!
//! The batcher runs on the runtime that starts it (a worker's: the function
//! that answers a batch may hold what cannot leave that thread, such as an
//! HTTP client), and stops when the last [`Batcher`] handle is dropped.

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

/// One item waiting, and where its answer goes.
type Waiting<T, R> = (T, oneshot::Sender<R>);

/// The handle callers submit through; see the module documentation.
pub struct Batcher<T, R> {
    queue: mpsc::UnboundedSender<Waiting<T, R>>,
}

impl<T, R> Clone for Batcher<T, R> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

/// How large a batch may be, and how many may be in flight at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_items: NonZeroUsize,
    pub in_flight: NonZeroUsize,
}

impl<T: 'static, R: 'static> Batcher<T, R> {
    /// Starts the batcher on the current runtime. `answer` gets each batch,
    /// in the order its items were submitted, and returns one answer per item,
    /// in the same order.
    pub fn start<F, Fut>(limits: Limits, answer: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + 'static,
        Fut: Future<Output = Vec<R>> + 'static,
    {
        let (queue, waiting) = mpsc::unbounded_channel();
        actix_web::rt::spawn(send_batches(limits, waiting, answer));
        Self { queue }
    }

    /// Submits `item` and waits for its answer: `None` only when the batcher
    /// stopped first (its runtime is shutting down) or `answer` returned
    /// fewer answers than items.
    pub async fn submit(&self, item: T) -> Option<R> {
        let (answer, answered) = oneshot::channel();
        self.queue.send((item, answer)).ok()?;
        answered.await.ok()
    }
}

/// The batcher's loop: takes a slot, then the first item waiting and every
/// other item already queued behind it (up to the limit), and answers them
/// together on a task of their own, which frees the slot when it is done.
async fn send_batches<T, R, F, Fut>(
    limits: Limits,
    mut waiting: mpsc::UnboundedReceiver<Waiting<T, R>>,
    answer: F,
) where
    T: 'static,
    R: 'static,
    F: Fn(Vec<T>) -> Fut + 'static,
    Fut: Future<Output = Vec<R>> + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.in_flight.get()));
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let Some(first) = waiting.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < limits.max_items.get() {
            match waiting.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (items, answers): (Vec<T>, Vec<oneshot::Sender<R>>) = batch.into_iter().unzip();
        let answered = answer(items);
        actix_web::rt::spawn(async move {
            for (to, result) in answers.into_iter().zip(answered.await) {
                // A caller that stopped waiting has nobody to tell.
                let _ = to.send(result);
            }
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    use super::*;

    fn limits(max_items: usize, in_flight: usize) -> Limits {
        Limits {
            max_items: NonZeroUsize::new(max_items).expect("not zero"),
            in_flight: NonZeroUsize::new(in_flight).expect("not zero"),
        }
    }

    /// The batches a batcher was given, in order.
    type Seen = Rc<RefCell<Vec<Vec<u32>>>>;

    /// A batcher that doubles its items after `delay`, recording each batch.
    fn doubling(limits: Limits, delay: Duration) -> (Batcher<u32, u32>, Seen) {
        let batches = Rc::new(RefCell::new(Vec::new()));
        let seen = Rc::clone(&batches);
        let batcher = Batcher::start(limits, move |items: Vec<u32>| {
            seen.borrow_mut().push(items.clone());
            async move {
                tokio::time::sleep(delay).await;
                items.into_iter().map(|i| i * 2).collect()
            }
        });
        (batcher, batches)
    }

    #[actix_web::test]
    async fn an_item_alone_goes_at_once_and_gets_its_own_answer() {
        let (batcher, batches) = doubling(limits(8, 1), Duration::ZERO);
        assert_eq!(batcher.submit(21).await, Some(42));
        assert_eq!(batcher.submit(5).await, Some(10));
        assert_eq!(*batches.borrow(), [vec![21], vec![5]]);
    }

    /// Submits `item` on a task of its own and lets the batcher send it.
    async fn submitted(
        batcher: &Batcher<u32, u32>,
        item: u32,
    ) -> actix_web::rt::task::JoinHandle<Option<u32>> {
        let batcher = batcher.clone();
        let waiting = actix_web::rt::spawn(async move { batcher.submit(item).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        waiting
    }

    #[actix_web::test]
    async fn items_that_queue_behind_a_batch_in_flight_leave_together_in_order() {
        let (batcher, batches) = doubling(limits(3, 1), Duration::from_millis(100));
        let first = submitted(&batcher, 1).await;
        let rest = futures::future::join_all((2..=7).map(|i| batcher.submit(i))).await;
        assert_eq!(first.await.expect("answered"), Some(2));
        assert_eq!(
            rest,
            (2..=7).map(|i| Some(i * 2)).collect::<Vec<_>>(),
            "each caller gets the answer to its own item"
        );
        // The first went alone; the rest queued while it was in flight and
        // left in batches of at most three, in the order submitted.
        assert_eq!(*batches.borrow(), [vec![1], vec![2, 3, 4], vec![5, 6, 7]]);
    }

    #[actix_web::test]
    async fn batches_are_in_flight_at_once_up_to_the_limit() {
        let (batcher, batches) = doubling(limits(100, 2), Duration::from_millis(100));
        let first = submitted(&batcher, 1).await;
        let second = submitted(&batcher, 2).await;
        let rest = futures::future::join_all((3..=5).map(|i| batcher.submit(i))).await;
        assert_eq!(first.await.expect("answered"), Some(2));
        assert_eq!(second.await.expect("answered"), Some(4));
        assert_eq!(rest, [Some(6), Some(8), Some(10)]);
        // Two alone while a slot was free; the last three waited for one.
        assert_eq!(*batches.borrow(), [vec![1], vec![2], vec![3, 4, 5]]);
    }

    #[actix_web::test]
    async fn an_item_left_without_an_answer_is_told_so() {
        let batcher = Batcher::start(limits(8, 1), |_: Vec<u32>| async { Vec::<u32>::new() });
        assert_eq!(batcher.submit(1).await, None);
    }
}
