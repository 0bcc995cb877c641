//! The message as handlers and extractors see it.

use async_nats::{HeaderMap, Message, Subject};
use bytes::Bytes;

/// One delivered message, with the span that traces its processing.
///
/// Extractors ([`FromMessage`](crate::FromMessage)) read from it by reference, so
/// any number of them can look at the same message, in any order.
#[derive(Debug)]
pub struct Incoming {
    pub(crate) message: Message,
    pub(crate) span: tracing::Span,
    pub(crate) jetstream: Option<crate::JetStreamInfo>,
    pub(crate) settler: Option<std::sync::Arc<crate::jetstream::Settler>>,
    /// Tokens of the service's subject prefix, skipped when reading captures.
    pub(crate) subject_offset: usize,
}

impl Incoming {
    /// Wraps a message and the span it is processed in.
    pub fn new(message: Message, span: tracing::Span) -> Self {
        Self { message, span, jetstream: None, settler: None, subject_offset: 0 }
    }

    /// The JetStream metadata of the delivery, for messages from a consumer.
    pub fn jetstream(&self) -> Option<&crate::JetStreamInfo> {
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

    /// The `process` span this message is handled in.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }
}
