//! What a handler can take from a JetStream delivery: its metadata and, to settle
//! it by hand, an [`Acker`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::jetstream;

use super::extract::{Extractor, FromMessage, Rejection};
use super::incoming::Incoming;
use super::settlement::Settlement;

/// The JetStream metadata of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamInfo {
    /// The stream.
    pub stream: Arc<str>,
    /// The consumer.
    pub consumer: Arc<str>,
    /// The message's sequence in the stream.
    pub stream_sequence: u64,
    /// The delivery's sequence in the consumer.
    pub consumer_sequence: u64,
    /// How many times the message has been delivered, this one included.
    pub delivered: i64,
    /// How many messages the consumer has yet to deliver.
    pub pending: u64,
    /// When the message was stored.
    pub published: SystemTime,
}

impl JetStreamInfo {
    /// Parses the delivery metadata; `names` are the consumer's own stream and
    /// consumer names, shared instead of allocated per message.
    pub(crate) fn from_message(message: &jetstream::Message, names: &(Arc<str>, Arc<str>)) -> Option<Self> {
        let info = message.info().ok()?;
        let shared = |parsed: &str, known: &Arc<str>| {
            if parsed == &**known { known.clone() } else { Arc::from(parsed) }
        };
        Some(Self {
            stream: shared(info.stream, &names.0),
            consumer: shared(info.consumer, &names.1),
            stream_sequence: info.stream_sequence,
            consumer_sequence: info.consumer_sequence,
            delivered: info.delivered,
            pending: info.pending,
            published: info.published.into(),
        })
    }
}

impl Extractor for JetStreamInfo {}

impl<S> FromMessage<S> for JetStreamInfo {
    fn from_message(incoming: &Incoming, _: &S) -> Result<Self, Rejection> {
        incoming.jetstream().cloned().ok_or_else(|| {
            Rejection::new("not_jetstream", "`JetStreamInfo` needs a message from a JetStream consumer")
                .with_code(500)
        })
    }
}

/// Manual settlement: a handler that takes an `Acker` settles its message itself,
/// and the service does not (unless the handler fails or panics before settling,
/// when the settlement table applies).
///
/// ```
/// use nats_otel_runtime::prelude::*;
/// use nats_otel_runtime::Acker;
///
/// #[jetstream_consumer(stream = "ORDERS", durable = "manual")]
/// async fn handle(body: Bytes, acker: Acker) -> Result<(), async_nats::Error> {
///     if body.is_empty() {
///         acker.term().await?;
///     } else {
///         acker.ack().await?;
///     }
///     Ok(())
/// }
/// # fn main() {}
/// ```
#[derive(Debug, Clone)]
pub struct Acker(Arc<dyn SettleByHand>);

impl Acker {
    /// Acknowledges: processed.
    pub async fn ack(&self) -> Result<(), async_nats::Error> {
        self.0.settle(Settlement::Ack).await
    }

    /// Asks for redelivery, after `delay` if given.
    pub async fn nak(&self, delay: Option<Duration>) -> Result<(), async_nats::Error> {
        self.0.settle(Settlement::Nak(delay)).await
    }

    /// Never redeliver.
    pub async fn term(&self) -> Result<(), async_nats::Error> {
        self.0.settle(Settlement::Term).await
    }

    /// Still working: resets the server's ack timer.
    pub async fn in_progress(&self) {
        self.0.in_progress().await;
    }
}

impl Extractor for Acker {}

impl<S> FromMessage<S> for Acker {
    const SETTLES_ITSELF: bool = true;

    fn from_message(incoming: &Incoming, _: &S) -> Result<Self, Rejection> {
        incoming.settler.clone().map(Acker).ok_or_else(|| {
            Rejection::new("not_jetstream", "`Acker` needs a message from a JetStream consumer")
                .with_code(500)
        })
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What settles a delivery for an [`Acker`]: the consumer's settler, attached
/// to the message it delivered. Boxed futures: only handlers that settle by hand
/// pay for them.
pub(crate) trait SettleByHand: Send + Sync + fmt::Debug {
    /// Sends `settlement` and records it.
    fn settle(&self, settlement: Settlement) -> BoxFuture<'_, Result<(), async_nats::Error>>;
    /// Resets the server's ack timer.
    fn in_progress(&self) -> BoxFuture<'_, ()>;
}
