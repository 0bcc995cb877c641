//! The message as handlers and extractors see it.

use async_nats::{HeaderMap, Message, Subject};
use bytes::Bytes;

use super::jetstream::{JetStreamInfo, SettleByHand};
use std::sync::Arc;

/// One delivered message, with the context of the span that traces its processing.
///
/// Extractors ([`FromMessage`](crate::FromMessage)) read from it by reference, so
/// any number of them can look at the same message, in any order.
#[derive(Debug)]
pub struct Incoming {
    pub(crate) message: Message,
    pub(crate) cx: opentelemetry::Context,
    pub(crate) jetstream: Option<JetStreamInfo>,
    /// What settles the delivery, for an `Acker`.
    pub(crate) settler: Option<Arc<dyn SettleByHand>>,
    /// Tokens of the service's subject prefix, skipped when reading captures.
    pub(crate) subject_offset: usize,
    /// A batch handler's messages, for `Batch<X>`.
    pub(crate) batch: Option<Box<super::batch::IncomingBatch>>,
}

impl Incoming {
    /// Wraps a message and the context it is processed in (holding its `process`
    /// span; `Context::new()` for none).
    pub fn new(message: Message, cx: opentelemetry::Context) -> Self {
        Self { message, cx, jetstream: None, settler: None, subject_offset: 0, batch: None }
    }

    /// The JetStream metadata of the delivery, for messages from a consumer.
    pub fn jetstream(&self) -> Option<&JetStreamInfo> {
        self.jetstream.as_ref()
    }

    /// The concrete subject the message was published to.
    pub fn subject(&self) -> &Subject {
        &self.message.subject
    }

    /// The reply subject, for requests.
    pub fn reply(&self) -> Option<&Subject> {
        self.message.reply.as_ref()
    }

    /// The headers, if the message has any.
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.message.headers.as_ref()
    }

    /// The payload.
    pub fn payload(&self) -> &Bytes {
        &self.message.payload
    }

    /// The raw async-nats message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The OpenTelemetry context this message is handled in: its `process` span
    /// (`context().span()`), when tracing is on.
    pub fn context(&self) -> &opentelemetry::Context {
        &self.cx
    }
}
