//! What handling any of a consumer's messages needs, one at a time or in
//! batches: the handler and its state, spans, the settlement policy, dead
//! letters; and the settling of one message from its outcome, which both
//! steps share.

use std::marker::PhantomData;
use std::sync::Arc;

use super::dead_letter::{self, DeadLetters, Letter, Original, Reason};
use super::keep_alive::AckWait;
use super::settle::Policy;
use super::settler::Settler;
use crate::endpoint::{AckMode, JetStreamConsumer};
use crate::handler::{Handler, Incoming, Outcome, Settlement};
use crate::otel::TARGET;
use crate::otel::metrics::{EndpointIdentity, EndpointMetrics};
use crate::otel::peer::Peer;
use crate::otel::spans::{self, ProcessSpans, SettleSpans};
use crate::serving::Run;

/// Everything handling one of a consumer's messages needs: the state of its
/// [`Step`], one message at a time (`consumer.rs`) or in batches (`batch.rs`).
pub(super) struct Shared<H, T, S> {
    pub(super) handler: H,
    pub(super) state: Arc<S>,
    pub(super) spans: ProcessSpans,
    pub(super) settle_spans: Arc<SettleSpans>,
    pub(super) policy: Policy,
    pub(super) ack: AckMode,
    /// The consumer's `ack_wait`, as the server holds it now.
    pub(super) ack_wait: AckWait,
    pub(super) dead_letters: Option<DeadLetters>,
    pub(super) client: async_nats::Client,
    pub(super) metrics: Arc<EndpointMetrics>,
    pub(super) names: (Arc<str>, Arc<str>),
    /// Tokens of the service's subject prefix, skipped when reading captures.
    pub(super) subject_offset: usize,
    pub(super) args: PhantomData<fn() -> T>,
}

/// A consumer's metrics. An ordered consumer is the instance's own: no group
/// shares it (as its spans say), and its name, new with every instance, would
/// start new series with each one, so it names neither.
pub(super) fn metrics<S>(spec: &JetStreamConsumer, run: &Run<S>, peer: &Peer) -> Arc<EndpointMetrics> {
    let durable = (!spec.is_ordered()).then(|| spec.durable_name());
    Arc::new(EndpointMetrics::new(
        run.instruments.clone(),
        peer.clone(),
        EndpointIdentity { destination: spec.pattern(), group: durable, subscription: durable },
        true,
        run.stats.clone(),
    ))
}

impl<H, T, S> Shared<H, T, S>
where
    H: Handler<T, S>,
    S: Send + Sync + 'static,
{
    /// Settles one message from its outcome, by the settlement table: unless
    /// the handler settled it by hand, or took an `Acker` and left it (then it
    /// is redelivered after `ack_wait`, and the span says so).
    pub(super) async fn settle(&self, incoming: &Incoming, settler: &Settler, outcome: &Outcome) {
        if settler.is_settled() {
            return;
        }
        if H::SETTLES_ITSELF && matches!(outcome, Outcome::Success(_)) {
            spans::warn(
                &incoming.cx,
                self.spans.name(),
                "the handler took an `Acker` but did not settle; the message will be redelivered after ack_wait",
                None,
            );
            return;
        }
        let delivered = incoming.jetstream.as_ref().map_or(1, |i| i.delivered);
        let mut settlement = self.policy.settle(outcome, delivered);
        // Boxed: a rare path, kept out of every message's future.
        if settlement == Settlement::DeadLetter && !Box::pin(self.dead_letter(incoming, outcome)).await {
            settlement = Settlement::Nak(Some(dead_letter::retry_delay(
                self.policy.backoff_for(delivered),
                delivered,
            )));
        }
        let _ = settler.settle(settlement).await;
    }

    /// Writes the letter for a failed delivery; whether it is stored (then the
    /// message may be termed). A failure is recorded on the process span and in
    /// the `dead_letters` metric.
    pub(super) async fn dead_letter(&self, incoming: &Incoming, outcome: &Outcome) -> bool {
        let Some(dead_letters) = &self.dead_letters else { return true };
        let (message, error_type) = match outcome {
            Outcome::Failure(failure) => (failure.message(), failure.error_type()),
            Outcome::Success(_) => ("", ""),
        };
        let info = incoming.jetstream();
        let original = Original {
            subject: incoming.subject(),
            headers: incoming.headers(),
            unreadable_headers: None,
            payload: incoming.payload(),
            stream: info.map_or(self.names.0.as_ref(), |i| &i.stream),
            consumer: info.map_or(self.names.1.as_ref(), |i| &i.consumer),
            stream_sequence: info.map_or(0, |i| i.stream_sequence),
            delivered: info.map_or(1, |i| i.delivered),
        };
        // The letter continues the trace of the message it carries.
        let letter = Letter::new(&original, Reason { message, error_type }, Some(&incoming.cx));
        match dead_letters.send(&letter).await {
            Ok(stored) => {
                self.metrics.dead_letter(None);
                dead_letter::record_stored(&incoming.cx, &dead_letters.subject, stored);
                true
            }
            Err(failed) => {
                self.metrics.dead_letter(Some(failed.error_type));
                spans::warn(
                    &incoming.cx,
                    self.spans.name(),
                    "the dead letter was not stored; the message is nak'ed and will be delivered again",
                    Some(&failed),
                );
                false
            }
        }
    }

    /// Dead-letters a message whose last delivery never came back, from the
    /// server's `MAX_DELIVERIES` advisory: fetched by its stream sequence, with its
    /// own trace context. Retried with a growing delay while the letter fails, as
    /// the consumer will not deliver it again.
    pub(super) async fn dead_letter_exhausted(&self, advisory: bytes::Bytes) {
        let Some(dead_letters) = &self.dead_letters else { return };
        #[derive(serde::Deserialize)]
        struct MaxDeliveries {
            stream_seq: u64,
            deliveries: i64,
        }
        let Ok(advisory) = serde_json::from_slice::<MaxDeliveries>(&advisory) else {
            tracing::warn!(target: TARGET, "{}: unreadable MAX_DELIVERIES advisory", self.spans.name());
            return;
        };
        let stored = match dead_letter::fetch(&self.client, &self.names.0, advisory.stream_seq).await {
            Ok(stored) => stored,
            Err(e) => {
                self.metrics.dead_letter(Some("dead_letter_source_missing"));
                tracing::warn!(target: TARGET, error = %e, sequence = advisory.stream_seq,
                    "{}: a message that exhausted its deliveries cannot be read back for its dead letter",
                    self.spans.name());
                return;
            }
        };
        let original = Original {
            subject: &stored.subject,
            headers: stored.headers.as_ref(),
            unreadable_headers: stored.unreadable_headers.as_deref(),
            payload: &stored.payload,
            stream: &self.names.0,
            consumer: &self.names.1,
            stream_sequence: advisory.stream_seq,
            delivered: advisory.deliveries,
        };
        let reason = Reason {
            message: "the delivery limit was reached without a settlement (the handler outlived ack_wait, or its process ended)",
            error_type: "max_deliveries",
        };
        let letter = Letter::new(&original, reason, None);
        for attempt in 1..=EXHAUSTED_ATTEMPTS {
            match dead_letters.send(&letter).await {
                Ok(_) => {
                    self.metrics.dead_letter(None);
                    return;
                }
                Err(failed) => {
                    self.metrics.dead_letter(Some(failed.error_type));
                    tracing::warn!(target: TARGET, error = %failed, sequence = advisory.stream_seq, attempt,
                        "{}: the dead letter of a message that exhausted its deliveries was not stored",
                        self.spans.name());
                    if attempt < EXHAUSTED_ATTEMPTS {
                        tokio::time::sleep(dead_letter::retry_delay(None, i64::from(attempt))).await;
                    }
                }
            }
        }
    }
}

/// How often the letter of an exhausted delivery is tried (about two minutes in all).
const EXHAUSTED_ATTEMPTS: u32 = 7;
