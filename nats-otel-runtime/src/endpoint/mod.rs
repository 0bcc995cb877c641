//! What an endpoint is, as configured: a core [`Subscription`] or a
//! [`JetStreamConsumer`], with their tracing and capture options and the
//! service's subject prefix. Checked with the rule book (`nats-otel-rules`)
//! before anything subscribes; read by the telemetry and the serving loop.

pub(crate) mod capture;
mod consumer;
mod declared;
pub mod discovery;
pub mod prefix;
pub(crate) mod stream;
mod subscription;

pub use consumer::{
    AckMode, DEFAULT_BATCH, DEFAULT_JETSTREAM_CONCURRENCY, DeadLetterRoute, Deliver, JetStreamConsumer,
    KvHistory, SettleRecord,
};
pub use declared::{DeclaredHandler, Descriptor};
pub use stream::NatsStream;
pub use subscription::{DEFAULT_CONCURRENCY, Subscription, TraceMode};

use crate::error::{ServeError, ServeErrorKind};
pub(crate) use subscription::{destination_names, has_wildcards};

/// Why an endpoint's configuration was rejected, before anything subscribed:
/// a bad subject or name, or options that break a rule of the book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejected {
    kind: ServeErrorKind,
    reason: String,
}

impl Rejected {
    /// A subject, filter, queue group, or stream or consumer name.
    pub(crate) fn subject(reason: impl Into<String>) -> Self {
        Self { kind: ServeErrorKind::InvalidSubject, reason: reason.into() }
    }

    /// Options that break a rule or do not go together.
    pub(crate) fn options(reason: impl Into<String>) -> Self {
        Self { kind: ServeErrorKind::InvalidOptions, reason: reason.into() }
    }

    /// The service's error, `context` naming the handler.
    pub(crate) fn into_error(self, context: String) -> ServeError {
        ServeError::with_source(self.kind, self.reason).context(context)
    }
}

/// What a declared handler is attached to.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Endpoint {
    /// A core NATS subscription.
    Subscribe(Subscription),
    /// A JetStream pull consumer.
    Consume(JetStreamConsumer),
}

impl Endpoint {
    /// Checks the configuration with the rule book, as the endpoint does
    /// before it subscribes.
    pub(crate) fn validate(&self) -> Result<(), Rejected> {
        match self {
            Endpoint::Subscribe(subscription) => subscription.validate(),
            Endpoint::Consume(consumer) => consumer.validate(),
        }
    }

    /// The handler's name, as errors and logs give it.
    pub(crate) fn handler_name(&self) -> &str {
        let name = match self {
            Endpoint::Subscribe(subscription) => subscription.name.as_deref(),
            Endpoint::Consume(consumer) => consumer.name.as_deref(),
        };
        name.unwrap_or("handler")
    }

    /// Puts the service's subject prefix in front of its subjects.
    pub(crate) fn apply_prefix(&mut self, prefix: &prefix::SubjectPrefix) {
        match self {
            Endpoint::Subscribe(subscription) => subscription.apply_prefix(prefix),
            Endpoint::Consume(consumer) => consumer.apply_prefix(prefix),
        }
    }
}
