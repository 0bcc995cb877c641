//! Where a batch handler's work comes from: the consumer's pull, gathered into
//! batches of up to `size` messages, or of what arrived within `wait` of a
//! batch's first message.
//!
//! The pull underneath keeps its guarantees: messages no batch can take yet
//! wait there and are kept alive, and its hold stays within `max_ack_pending`.
//! The batches being handled count as `size` messages each; so does a batch
//! that is filling, by its length.

use std::pin::Pin;
use std::time::Duration;

use async_nats::jetstream::{AckKind, Message};

use super::pulling::{Pulling, Work};
use crate::serving::{Next, Source};

/// One unit of a batch handler's work.
#[derive(Debug)]
pub(crate) enum BatchWork {
    /// Messages to hand the handler at once, in delivery order.
    Batch(Vec<Message>),
    /// A `MAX_DELIVERIES` advisory: a delivery that never came back, to dead-letter.
    Exhausted(bytes::Bytes),
}

/// A consumer's pull, gathered into batches.
#[derive(Debug)]
pub(crate) struct Batching {
    pulling: Pulling,
    size: usize,
    wait: Duration,
    /// Batches handled at once.
    limit: usize,
    filling: Vec<Message>,
    /// When the filling batch's first message arrived.
    first: tokio::time::Instant,
    /// When the filling batch goes, full or not.
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// A batch on its way out: kept here while it is told in progress, so a
    /// `next` dropped meanwhile loses nothing.
    ready: Option<Vec<Message>>,
    /// How the pull ended, kept while the last batch is handed out.
    ended: Option<Next<BatchWork>>,
}

impl Batching {
    /// Batches of up to `size` messages from `pulling`, whose limit must be
    /// `limit` × `size` messages.
    pub(crate) fn new(pulling: Pulling, size: usize, wait: Duration, limit: usize) -> Self {
        Self {
            pulling,
            size: size.max(1),
            wait,
            limit: limit.max(1),
            filling: Vec::new(),
            first: tokio::time::Instant::now(),
            deadline: Box::pin(tokio::time::sleep(Duration::ZERO)),
            ready: None,
            ended: None,
        }
    }

    /// The filling batch, handed out. Its messages were not kept alive while
    /// it filled: when the first has waited half the pace or more, they are all
    /// told in progress first (the handler's own heartbeats start a pace later).
    async fn take_batch(&mut self) -> Next<BatchWork> {
        let capacity = self.size.min(64);
        let batch = self.ready.insert(std::mem::replace(&mut self.filling, Vec::with_capacity(capacity)));
        if self.first.elapsed() >= self.pulling.waiting_pace() / 2 {
            for message in batch.iter() {
                let _ = message.ack_with(AckKind::Progress).await;
            }
        }
        Next::Work(BatchWork::Batch(self.ready.take().unwrap_or_default()))
    }
}

impl Source for Batching {
    type Work = BatchWork;

    async fn next(&mut self, busy: usize) -> Next<BatchWork> {
        if let Some(batch) = self.ready.take() {
            return Next::Work(BatchWork::Batch(batch));
        }
        if let Some(ended) = self.ended.take() {
            return ended;
        }
        loop {
            // What the handlers hold, in messages: all of it while no batch may
            // start, so the pull keeps what arrives waiting (and alive).
            let held = if busy >= self.limit {
                self.limit * self.size
            } else {
                busy * self.size + self.filling.len()
            };
            let filling = !self.filling.is_empty();
            tokio::select! {
                biased;
                () = self.deadline.as_mut(), if filling => return self.take_batch().await,
                next = self.pulling.next(held) => match next {
                    Next::Work(Work::Delivery(message)) => {
                        if self.filling.is_empty() {
                            self.first = tokio::time::Instant::now();
                            self.deadline.as_mut().reset(self.first + self.wait);
                        }
                        self.filling.push(message);
                        let room = self.size - self.filling.len();
                        self.pulling.take_ready(room, &mut self.filling);
                        if self.filling.len() >= self.size {
                            return self.take_batch().await;
                        }
                    }
                    Next::Work(Work::Exhausted(advisory)) => return Next::Work(BatchWork::Exhausted(advisory)),
                    Next::Ended(result) if filling => {
                        // The batch already gathered is handled first.
                        self.ended = Some(Next::Ended(result));
                        return self.take_batch().await;
                    }
                    Next::Ended(result) => return Next::Ended(result),
                },
            }
        }
    }

    async fn stop(&mut self) {
        // The filling batch stays: it goes to a handler as the pull ends.
        self.pulling.stop().await;
    }

    async fn close(self) {
        self.pulling.close().await;
    }
}
