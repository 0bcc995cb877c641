//! What a batch handler takes and returns: [`Batch<X>`] (each message read by
//! a single-message extractor `X`), and [`BatchOutcome`] to fail single items.
//!
//! A message whose extraction fails, or panics, is left out of the batch and
//! settled on its own (termed or dead-lettered as poison, nak'ed after a
//! panic), so one bad message never fails the others.

use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, PoisonError};

use super::extract::{Extractor, FromMessage, Rejection, State};
use super::incoming::Incoming;
use super::jetstream::JetStreamInfo;
use super::reply::{Failure, HandlerError, IntoOutcome, IntoReply, Outcome, Reply};

/// The messages of one batch, as the step hands them to the handler.
#[derive(Debug)]
pub(crate) struct IncomingBatch {
    pub(crate) items: Vec<Incoming>,
    /// Items whose extraction failed, by position: settled on their own.
    pub(crate) failed: Mutex<Vec<(usize, Failure)>>,
}

impl IncomingBatch {
    pub(crate) fn new(items: Vec<Incoming>) -> Self {
        Self { items, failed: Mutex::new(Vec::new()) }
    }

    /// The extraction failures, taken out.
    pub(crate) fn take_failed(&self) -> Vec<(usize, Failure)> {
        std::mem::take(&mut *self.failed.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Which message of its batch an item is: what [`BatchOutcome::fail`] is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemId(usize);

impl ItemId {
    /// The message's position in the batch as it was delivered (items left out
    /// of the batch keep theirs).
    pub fn index(self) -> usize {
        self.0
    }
}

/// One message of a batch: its value, read by the extractor `X` (and reached
/// through it: `order.0` of a `BatchItem<Json<Order>>`), and its JetStream
/// delivery.
#[derive(Debug)]
// Field names unlike any of a user's: field access goes through `Deref` to
// the value (`order.0` of a `BatchItem<Json<Order>>`, `order.id` of a
// `BatchItem<Order>`), and a private field of the same name would stop it.
pub struct BatchItem<X> {
    extracted_value: X,
    item_meta: ItemMeta,
}

/// Where an item came from.
#[derive(Debug)]
struct ItemMeta {
    subject: async_nats::Subject,
    info: Option<JetStreamInfo>,
    id: ItemId,
}

impl<X> BatchItem<X> {
    /// What [`BatchOutcome::fail`] takes to fail this message alone.
    pub fn id(&self) -> ItemId {
        self.item_meta.id
    }

    /// The subject the message was published to.
    pub fn subject(&self) -> &async_nats::Subject {
        &self.item_meta.subject
    }

    /// The delivery's stream, sequences and delivery count.
    pub fn info(&self) -> Option<&JetStreamInfo> {
        self.item_meta.info.as_ref()
    }

    /// The extracted value.
    pub fn value(&self) -> &X {
        &self.extracted_value
    }

    /// The extracted value, taken out.
    pub fn into_inner(self) -> X {
        self.extracted_value
    }
}

impl<X> std::ops::Deref for BatchItem<X> {
    type Target = X;

    fn deref(&self) -> &X {
        &self.extracted_value
    }
}

/// A batch of messages from a JetStream consumer with `batch_size`, each read
/// by the single-message extractor `X` (`Batch<Json<Order>>`, `Batch<Bytes>`,
/// `Batch<MyMessage>`).
///
/// The handler runs once per batch, in one `process` span with
/// `messaging.batch.message_count` and a link to each message's trace. Each
/// message is settled on its own: acked when the handler succeeds, by the
/// settlement table with the handler's error when it fails, or alone when
/// [`BatchOutcome::fail`] names it.
///
/// ```no_run
/// use nats_otel_runtime::prelude::*;
/// use nats_otel_runtime::{Batch, BatchOutcome};
///
/// #[derive(Deserialize)]
/// struct Order { id: u64 }
///
/// #[jetstream_consumer(stream = "ORDERS", durable = "bulk", batch_size = 100, batch_wait = "50ms")]
/// async fn store(orders: Batch<Json<Order>>) -> BatchOutcome<ServiceError> {
///     let mut outcome = BatchOutcome::new();
///     for order in orders {
///         if order.0.id == 0 {
///             outcome.fail(order.id(), ServiceError::new(422, "order id 0"));
///         }
///     }
///     outcome
/// }
/// ```
#[derive(Debug)]
pub struct Batch<X> {
    items: Vec<BatchItem<X>>,
}

impl<X> Batch<X> {
    /// How many messages the handler got (those whose extraction failed are not
    /// among them).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether every message of the batch failed its extraction.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items, in delivery order.
    pub fn iter(&self) -> std::slice::Iter<'_, BatchItem<X>> {
        self.items.iter()
    }

    /// The items, taken out.
    pub fn into_items(self) -> Vec<BatchItem<X>> {
        self.items
    }
}

impl<X> IntoIterator for Batch<X> {
    type Item = BatchItem<X>;
    type IntoIter = std::vec::IntoIter<BatchItem<X>>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl<'a, X> IntoIterator for &'a Batch<X> {
    type Item = &'a BatchItem<X>;
    type IntoIter = std::slice::Iter<'a, BatchItem<X>>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

/// Each message is extracted alone, guarded: a rejection or a panic leaves
/// that message out and records why, for its own settlement.
impl<S, X: FromMessage<S> + Extractor> FromMessage<S> for Batch<X> {
    const TRACE_CONTEXT_IN_BODY: bool = X::TRACE_CONTEXT_IN_BODY;
    const SETTLES_ITSELF: bool = X::SETTLES_ITSELF;

    fn from_message(incoming: &Incoming, state: &S) -> Result<Self, Rejection> {
        let Some(batch) = &incoming.batch else {
            return Err(Rejection::new(
                "not_a_batch",
                "`Batch<T>` needs a batch handler: give the consumer `batch_size`",
            ));
        };
        let mut items = Vec::with_capacity(batch.items.len());
        let mut failed = Vec::new();
        for (index, item) in batch.items.iter().enumerate() {
            match std::panic::catch_unwind(AssertUnwindSafe(|| X::from_message(item, state))) {
                Ok(Ok(value)) => items.push(BatchItem {
                    extracted_value: value,
                    item_meta: ItemMeta {
                        subject: item.message.subject.clone(),
                        info: item.jetstream.clone(),
                        id: ItemId(index),
                    },
                }),
                Ok(Err(rejection)) => failed.push((index, Failure::rejected(rejection))),
                Err(panic) => failed.push((index, Failure::caught(panic))),
            }
        }
        if !failed.is_empty() {
            batch.failed.lock().unwrap_or_else(PoisonError::into_inner).extend(failed);
        }
        Ok(Self { items })
    }
}

/// An argument a batch handler can take: one that reads the batch as a whole.
#[diagnostic::on_unimplemented(
    message = "`{Self}` reads one message, but this handler takes batches",
    label = "not an argument of a batch handler",
    note = "a batch handler takes `Batch<T>` (`T` reads each message: `Batch<Json<Order>>`), `State<T>` and `TraceContext`",
    note = "to handle one message at a time, remove `batch_size` and `batch_wait`"
)]
pub trait BatchArgument {}

impl<X> BatchArgument for Batch<X> {}
impl<T> BatchArgument for State<T> {}
/// The batch's `process` span.
impl BatchArgument for opentelemetry::Context {}

/// A batch handler's result that fails single messages: each named one is
/// settled by the settlement table with its error (nak'ed for redelivery,
/// termed or dead-lettered when permanent or out of deliveries); the others
/// are acked. Return `Result<(), E>` instead to fail the whole batch.
///
/// ```
/// use nats_otel_runtime::{BatchOutcome, Permanent, ServiceError};
///
/// let outcome: BatchOutcome<Permanent<ServiceError>> = BatchOutcome::new();
/// assert_eq!(outcome.failures(), 0);
/// ```
#[derive(Debug)]
pub struct BatchOutcome<E> {
    failed: Vec<(ItemId, E)>,
}

impl<E> BatchOutcome<E> {
    /// Every message succeeded, until [`fail`](Self::fail) says otherwise.
    pub fn new() -> Self {
        Self { failed: Vec::new() }
    }

    /// Fails the message `item` with `error`; the first error given for an item counts.
    pub fn fail(&mut self, item: ItemId, error: E) {
        self.failed.push((item, error));
    }

    /// How many failures were given.
    pub fn failures(&self) -> usize {
        self.failed.len()
    }
}

impl<E> Default for BatchOutcome<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: HandlerError> IntoReply for BatchOutcome<E> {
    fn into_reply(self) -> Result<Reply, Failure> {
        let failed: Vec<(usize, Failure)> =
            self.failed.iter().map(|(id, error)| (id.0, Failure::from_error(error))).collect();
        Ok(Reply {
            failed_items: (!failed.is_empty()).then(|| failed.into_boxed_slice()),
            ..Reply::default()
        })
    }
}

impl<E: HandlerError> IntoOutcome for BatchOutcome<E> {
    fn into_outcome(self) -> Outcome {
        match self.into_reply() {
            Ok(reply) => Outcome::Success(reply),
            Err(failure) => Outcome::Failure(failure),
        }
    }
}

/// The `T` of [`Handler<T, S>`](crate::Handler) for an undecorated batch
/// handler: `async fn(Batch<X>)`, or with up to two more arguments that read the
/// batch too (`State<T>`, `TraceContext`).
pub struct BatchArgs<Args>(std::marker::PhantomData<fn() -> Args>);

impl<Args> std::fmt::Debug for BatchArgs<Args> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BatchArgs")
    }
}

/// `Handler` for `async fn(Batch<X>, A…)`, each `A` reading the whole batch.
macro_rules! impl_batch_handler {
    ($($arg:ident),*) => {
        impl<F, Fut, S, X, $($arg,)*> super::sealed::Sealed<BatchArgs<(X, $($arg,)*)>, S> for F
        where
            F: Fn(Batch<X>, $($arg),*) -> Fut + Clone + Send + Sync + 'static,
            Fut: std::future::Future + Send + 'static,
            Fut::Output: IntoOutcome,
            X: FromMessage<S> + Extractor,
            $($arg: FromMessage<S> + BatchArgument,)*
        {
        }

        impl<F, Fut, S, X, $($arg,)*> super::Handler<BatchArgs<(X, $($arg,)*)>, S> for F
        where
            F: Fn(Batch<X>, $($arg),*) -> Fut + Clone + Send + Sync + 'static,
            Fut: std::future::Future + Send + 'static,
            Fut::Output: IntoOutcome,
            X: FromMessage<S> + Extractor,
            $($arg: FromMessage<S> + BatchArgument,)*
        {
            type Future = Fut;
            type Output = Fut::Output;
            const TRACE_CONTEXT_IN_BODY: bool = X::TRACE_CONTEXT_IN_BODY;
            const SETTLES_ITSELF: bool = X::SETTLES_ITSELF;
            const BATCH: bool = true;

            #[allow(non_snake_case)]
            fn call(&self, incoming: &Incoming, state: &S) -> Result<Fut, Rejection> {
                let batch = Batch::from_message(incoming, state)?;
                $(let $arg = $arg::from_message(incoming, state)?;)*
                Ok(self(batch, $($arg),*))
            }
        }
    };
}

impl_batch_handler!();
impl_batch_handler!(A1);
impl_batch_handler!(A1, A2);
