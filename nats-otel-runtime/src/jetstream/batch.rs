//! Handling a batch: one `process` span linked to every message, one call of
//! the handler, then each message settled on its own from its own outcome,
//! with the per-message settlement, settle spans and dead letters.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use async_nats::jetstream;
use futures_util::future::{Either, join_all};

use super::batching::BatchWork;
use super::keep_alive::{Beating, Pace, with_progress};
use super::settler::Settler;
use super::shared::Shared;
use crate::endpoint::AckMode;
use crate::handler::batch::IncomingBatch;
use crate::handler::{Failure, Handler, Incoming, JetStreamInfo, Outcome, Reply};
use crate::otel::spans::Delivery;
use crate::serving::Step;
use crate::serving::invoke::{invoke, last_resort, telemetry_or_default};

/// A consumer whose handler takes batches: the JetStream kind's [`Step`] for
/// [`BatchWork`].
pub(super) struct PerBatch<H, T, S>(pub(super) Shared<H, T, S>);

impl<H, T, S> Step for PerBatch<H, T, S>
where
    H: Handler<T, S>,
    S: Send + Sync + 'static,
{
    type Work = BatchWork;

    fn handle(&self, work: BatchWork) -> impl Future<Output = ()> + Send + '_ {
        match work {
            BatchWork::Batch(messages) => Either::Left(self.process(messages)),
            BatchWork::Exhausted(advisory) => Either::Right(Box::pin(self.0.dead_letter_exhausted(advisory))),
        }
    }
}

impl<H, T, S> PerBatch<H, T, S>
where
    H: Handler<T, S>,
    S: Send + Sync + 'static,
{
    fn process(&self, messages: Vec<jetstream::Message>) -> impl Future<Output = ()> + Send + '_ {
        let shared = &self.0;
        let started = std::time::Instant::now();
        let count = messages.len();
        let traced = !shared.spans.is_off();
        let delivered: Vec<(async_nats::Message, jetstream::message::Acker, Option<JetStreamInfo>)> =
            messages
                .into_iter()
                .map(|message| {
                    let info = JetStreamInfo::from_message(&message, &shared.names);
                    shared.metrics.received(message.payload.len());
                    if let Some(info) = &info {
                        shared.metrics.delivery(info.delivered, info.pending);
                    }
                    let (message, acker) = message.split();
                    (message, acker, info)
                })
                .collect();
        let cx = telemetry_or_default(|| {
            shared.spans.start_batch(delivered.iter().map(|(message, ..)| message), H::TRACE_CONTEXT_IN_BODY)
        });
        let mut settlers = Vec::with_capacity(count);
        let mut items = Vec::with_capacity(count);
        for (message, acker, info) in delivered {
            let delivery = Delivery::new(&message, info.as_ref(), traced);
            let settled = telemetry_or_default(|| shared.settle_spans.message(&cx, &message, &delivery));
            drop(delivery);
            let settler = Arc::new(Settler {
                acker,
                mode: shared.ack,
                spans: shared.settle_spans.clone(),
                message: settled,
                process: cx.clone(),
                settled: AtomicBool::new(false),
                metrics: shared.metrics.clone(),
                in_batch: true,
            });
            let mut incoming = Incoming::new(message, cx.clone());
            incoming.subject_offset = shared.subject_offset;
            incoming.jetstream = info;
            incoming.settler = Some(settler.clone() as Arc<dyn crate::handler::jetstream::SettleByHand>);
            settlers.push(settler);
            items.push(incoming);
        }
        // The batch as the handler's arguments see it: `Batch<X>` reads its items.
        let subject =
            items.first().map_or_else(|| async_nats::Subject::from(""), |item| item.message.subject.clone());
        let mut batch = Incoming::new(empty_message(subject), cx);
        batch.batch = Some(Box::new(IncomingBatch::new(items)));

        last_resort(async move {
            let pace = shortest_pace(shared, &batch);
            let outcome =
                with_progress(invoke(&shared.handler, &batch, &shared.state), &Settlers(&settlers), pace)
                    .await;
            let Some(items) = batch.batch.as_deref() else { return };
            let outcomes = item_outcomes(outcome, items);
            let failures: Vec<(usize, Option<u64>, &Failure)> = outcomes
                .iter()
                .enumerate()
                .filter_map(|(index, outcome)| match outcome {
                    Outcome::Failure(failure) => {
                        let sequence = items.items[index].jetstream.as_ref().map(|i| i.stream_sequence);
                        Some((index, sequence, failure))
                    }
                    Outcome::Success(_) => None,
                })
                .collect();
            shared.spans.record_batch_failures(&batch.cx, count, &failures);
            shared.metrics.processed_batch(
                started.elapsed(),
                outcomes.iter().map(|outcome| match outcome {
                    Outcome::Failure(failure) => Some(failure),
                    Outcome::Success(_) => None,
                }),
            );
            let settling = items.items.iter().zip(&settlers).zip(&outcomes);
            match shared.ack {
                // A confirmed settlement is a round trip each: awaited together.
                AckMode::Confirmed => {
                    join_all(
                        settling
                            .map(|((incoming, settler), outcome)| shared.settle(incoming, settler, outcome)),
                    )
                    .await;
                }
                // A fire-and-forget one is a write to the connection: one after the
                // other costs less than a set of futures (callgrind, scenario A100:
                // the set's polling was a quarter of the batch step).
                AckMode::Fire => {
                    for ((incoming, settler), outcome) in settling {
                        shared.settle(incoming, settler, outcome).await;
                    }
                }
            }
        })
    }
}

/// The message a batch is handed to its handler as: its items are the
/// messages; this one has only the first one's subject.
fn empty_message(subject: async_nats::Subject) -> async_nats::Message {
    async_nats::Message {
        subject,
        reply: None,
        payload: bytes::Bytes::new(),
        headers: None,
        status: None,
        description: None,
        length: 0,
    }
}

/// The pace of the batch's heartbeats: that of the message whose ack timeout
/// is shortest (with a backoff schedule, it depends on its delivery count).
fn shortest_pace<'a, H, T, S>(shared: &'a Shared<H, T, S>, batch: &Incoming) -> Pace<'a> {
    let ack_wait = shared.ack_wait.current();
    let delivered = batch
        .batch
        .iter()
        .flat_map(|b| &b.items)
        .map(|item| item.jetstream.as_ref().map_or(1, |i| i.delivered))
        .min_by_key(|&delivered| shared.policy.ack_wait_for(delivered, ack_wait))
        .unwrap_or(1);
    Pace { policy: &shared.policy, ack_wait: &shared.ack_wait, delivered }
}

/// Each message's own outcome: its extraction failure, else the failure the
/// handler named for it, else the handler's outcome for the whole batch.
fn item_outcomes(outcome: Outcome, batch: &IncomingBatch) -> Vec<Outcome> {
    let count = batch.items.len();
    let (mut outcomes, named): (Vec<Option<Outcome>>, _) = match outcome {
        Outcome::Failure(failure) => {
            ((0..count).map(|_| Some(Outcome::Failure(failure.clone()))).collect(), None)
        }
        Outcome::Success(reply) => ((0..count).map(|_| None).collect(), reply.failed_items),
    };
    for (index, failure) in batch.take_failed() {
        if let Some(slot) = outcomes.get_mut(index) {
            *slot = Some(Outcome::Failure(failure));
        }
    }
    for (index, failure) in named.into_iter().flat_map(Vec::from) {
        // The first failure given for an item counts; extraction came first.
        if let Some(slot @ None) = outcomes.get_mut(index) {
            *slot = Some(Outcome::Failure(failure));
        }
    }
    outcomes
        .into_iter()
        .map(|outcome| outcome.unwrap_or_else(|| Outcome::Success(Reply::default())))
        .collect()
}

/// The messages of a batch, kept alive together while the handler runs.
struct Settlers<'a>(&'a [Arc<Settler>]);

impl Beating for Settlers<'_> {
    fn is_settled(&self) -> bool {
        self.0.iter().all(|settler| settler.is_settled())
    }

    /// One after the other: each is a write to the connection (see the settling).
    async fn in_progress(&self) {
        for settler in self.0.iter().filter(|settler| !settler.is_settled()) {
            settler.progress().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(message: &str) -> Failure {
        Failure::rejected(crate::Rejection::new("t", message))
    }

    #[test]
    fn each_item_gets_its_own_outcome() {
        let batch = IncomingBatch::new(
            (0..4).map(|_| Incoming::new(empty_message("s".into()), opentelemetry::Context::new())).collect(),
        );
        batch.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((1, failure("poison")));
        let named = vec![(1, failure("named too")), (3, failure("named")), (3, failure("again"))];
        let reply = Reply { failed_items: Some(named.into_boxed_slice()), ..Reply::default() };
        let outcomes = item_outcomes(Outcome::Success(reply), &batch);
        let messages: Vec<&str> = outcomes
            .iter()
            .map(|o| match o {
                Outcome::Failure(f) => f.message(),
                Outcome::Success(_) => "ok",
            })
            .collect();
        assert_eq!(messages, ["ok", "poison", "ok", "named"]);

        let whole = item_outcomes(Outcome::Failure(failure("all")), &batch);
        assert!(whole.iter().all(|o| matches!(o, Outcome::Failure(f) if f.message() == "all")));
    }
}
