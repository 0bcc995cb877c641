//! Run-time errors, shaped like async-nats' own: one generic [`Error<Kind>`] with a
//! small `Copy` kind per operation.
//!
//! As the standard library's convention asks, an error displays itself
//! ("kind (context)") and gives its cause through `source()`, so a report that
//! walks the chain (anyhow's, eyre's) names each cause once. `{:#}` displays
//! the whole chain on one line ("kind (context): cause: its cause"), as nats-otel's
//! own log lines and spans do, and says a cause once even when the error before
//! it already printed it (as async-nats' errors do).

use std::fmt;

/// The boxed source of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error of kind `K`, with an optional source and a context line (for example
/// the handler and subject it concerns).
pub struct Error<K> {
    kind: K,
    context: Option<String>,
    source: Option<BoxError>,
}

impl<K: Copy> Error<K> {
    /// An error of `kind` with no source.
    pub fn new(kind: K) -> Self {
        Self { kind, context: None, source: None }
    }

    /// An error of `kind` caused by `source`.
    pub fn with_source(kind: K, source: impl Into<BoxError>) -> Self {
        Self { kind, context: None, source: Some(source.into()) }
    }

    /// Adds a context line, shown between the kind and the source.
    #[must_use]
    pub fn context(mut self, context: impl Into<String>) -> Self {
        self.context = Some(context.into());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> K {
        self.kind
    }
}

/// `kind (context)`; with `{:#}`, followed by every cause: `kind (context): cause: …`.
///
/// ```
/// use nats_otel_runtime::{ServeError, ServeErrorKind};
/// let e = ServeError::with_source(ServeErrorKind::Subscribe, "permissions violation").context("handler `a`");
/// assert_eq!(e.to_string(), "failed to subscribe (handler `a`)");
/// assert_eq!(format!("{e:#}"), "failed to subscribe (handler `a`): permissions violation");
/// assert_eq!(std::error::Error::source(&e).unwrap().to_string(), "permissions violation");
/// ```
impl<K: fmt::Display> fmt::Display for Error<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(context) = &self.context {
            write!(f, " ({context})")?;
        }
        if f.alternate() {
            let source = self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static));
            write_causes(f, String::new(), source)?;
        }
        Ok(())
    }
}

/// Writes `cause` and each cause after it as `: cause`, `said` being the text
/// written just before. Some errors (async-nats') print their source in their
/// own message and give it through `source()` too: a cause the text before it
/// already ends with is not said again.
pub(crate) fn write_causes(
    out: &mut impl fmt::Write,
    mut said: String,
    mut cause: Option<&(dyn std::error::Error + 'static)>,
) -> fmt::Result {
    while let Some(error) = cause {
        let text = error.to_string();
        if !said.ends_with(&text) {
            write!(out, ": {text}")?;
        }
        said = text;
        cause = error.source();
    }
    Ok(())
}

impl<K: fmt::Debug> fmt::Debug for Error<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("context", &self.context)
            .field("source", &self.source)
            .finish()
    }
}

impl<K: fmt::Debug + fmt::Display> std::error::Error for Error<K> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Why [`NatsService::run_until`](crate::NatsService::run_until) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServeErrorKind {
    /// A subject, filter, queue group, or stream or consumer name (each becomes
    /// part of a subject) was rejected before subscribing.
    InvalidSubject,
    /// An endpoint's options break a rule or do not go together, checked before
    /// subscribing: `concurrency` of 0 or above `max_ack_pending`, `backoff`
    /// longer than `max_deliver` allows, an ack option on an ordered consumer,
    /// a batch handler on a consumer without batches.
    InvalidOptions,
    /// The server refused the subscription, or the client could not send it.
    Subscribe,
    /// The server reported a permissions violation for a subscription.
    PermissionDenied,
    /// A subscription ended while the service was not shutting down, and the
    /// client's connection task still runs (when it does not, the error is
    /// [`ConnectionClosed`](Self::ConnectionClosed)).
    SubscriptionClosed,
    /// In-flight handlers did not finish within the shutdown timeout.
    ShutdownTimeout,
    /// Flushing replies at shutdown failed.
    Flush,
    /// The JetStream stream does not exist (or JetStream is not enabled).
    StreamNotFound,
    /// A declared stream ([`NatsService::stream`](crate::NatsService::stream))
    /// could not be created or updated with its configuration, or a consumer's
    /// filter lies outside its declared stream's subjects.
    Stream,
    /// The consumer could not be created or updated with this configuration.
    Consumer,
    /// `create = false` and the consumer does not exist.
    ConsumerNotFound,
    /// The consumer was deleted while the service ran.
    ConsumerDeleted,
    /// The client's connection task has ended: the client was drained or closed,
    /// or the task died. async-nats 0.51's dies on a header value holding a lone
    /// CR (a panic inside the task; see the repository's
    /// `docs/upstream/async-nats-header-parsing.md`), after which the client still
    /// reports `Connected` but every command fails and nothing reconnects.
    /// Restart with a new client.
    ConnectionClosed,
    /// The service's Services API name or version breaks ADR-32's rules, or
    /// a version, description or metadata was given without a name.
    InvalidIdentity,
    /// The service was built with `NatsService::without_connection()`, for its
    /// contract only, and cannot be started.
    NoConnection,
}

impl ServeErrorKind {
    /// Its `error.type` on a set-up span.
    pub(crate) fn error_type(self) -> &'static str {
        match self {
            Self::InvalidSubject => "invalid_subject",
            Self::InvalidOptions => "invalid_options",
            Self::Subscribe => "subscribe",
            Self::PermissionDenied => "permission_denied",
            Self::SubscriptionClosed => "subscription_closed",
            Self::ShutdownTimeout => "shutdown_timeout",
            Self::Flush => "flush",
            Self::StreamNotFound => "stream_not_found",
            Self::Stream => "stream",
            Self::Consumer => "consumer",
            Self::ConsumerNotFound => "consumer_not_found",
            Self::ConsumerDeleted => "consumer_deleted",
            Self::ConnectionClosed => "connection_closed",
            Self::InvalidIdentity => "invalid_identity",
            Self::NoConnection => "no_connection",
        }
    }
}

impl fmt::Display for ServeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidSubject => "invalid subscription",
            Self::InvalidOptions => "invalid endpoint options",
            Self::Subscribe => "failed to subscribe",
            Self::PermissionDenied => "permission denied",
            Self::SubscriptionClosed => "subscription closed unexpectedly",
            Self::ShutdownTimeout => "in-flight handlers did not finish before the shutdown timeout",
            Self::Flush => "failed to flush replies",
            Self::StreamNotFound => "stream not found",
            Self::Stream => "failed to create or update the stream",
            Self::Consumer => "failed to create or update the consumer",
            Self::ConsumerNotFound => {
                "consumer not found (`create = false` binds only to an existing consumer)"
            }
            Self::ConsumerDeleted => "consumer deleted",
            Self::ConnectionClosed => {
                "connection closed: the async-nats connection task has ended (the client was drained, or \
                 the task died, as it does on a header value holding a lone CR: see \
                 docs/upstream/async-nats-header-parsing.md)"
            }
            Self::InvalidIdentity => "invalid Services API identity",
            Self::NoConnection => "the service has no connection",
        })
    }
}

/// Error returned by [`NatsService::run_until`](crate::NatsService::run_until).
pub type ServeError = Error<ServeErrorKind>;

/// Why a traced publish or request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishErrorKind {
    /// The subject is not a valid publish subject.
    InvalidSubject,
    /// The payload could not be encoded.
    Encode,
    /// The client could not send the message.
    Send,
    /// The server denies this connection publishing to the subject (named in the
    /// error): it drops such messages. Reported only with
    /// [`Publisher::events`](crate::Publisher::events), for a subject the server has
    /// denied recently; see there.
    PermissionDenied,
}

impl fmt::Display for PublishErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidSubject => "invalid subject",
            Self::Encode => "failed to encode the payload",
            Self::Send => "failed to publish",
            Self::PermissionDenied => "permission denied",
        })
    }
}

/// Error returned by [`Publisher::publish`](crate::Publisher::publish) and friends.
pub type PublishError = Error<PublishErrorKind>;

/// Why broker tracing ([`broker_trace`](crate::broker_trace)) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokerTraceErrorKind {
    /// The subject is not valid for its use.
    InvalidSubject,
    /// The subscription to the reports failed.
    Subscribe,
    /// The traced publish failed.
    Publish,
    /// No server reported in time.
    NoReport,
}

impl fmt::Display for BrokerTraceErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidSubject => "invalid subject",
            Self::Subscribe => "failed to subscribe to the trace reports",
            Self::Publish => "failed to publish the traced message",
            Self::NoReport => "no trace report",
        })
    }
}

/// Error returned by [`broker_trace`](crate::broker_trace)'s collector and dry run.
pub type BrokerTraceError = Error<BrokerTraceErrorKind>;

/// Why a traced request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestErrorKind {
    /// The subject is not a valid publish subject.
    InvalidSubject,
    /// The payload could not be encoded.
    Encode,
    /// No reply arrived in time.
    TimedOut,
    /// No service is listening on the subject.
    NoResponders,
    /// The responder answered with `Nats-Service-Error` headers; see
    /// [`RequestError::service_error`].
    Service,
    /// The reply could not be decoded.
    Decode,
    /// The server denies this connection publishing to the subject (named in the
    /// error); needs [`Publisher::events`](crate::Publisher::events).
    PermissionDenied,
    /// Any other failure of the client.
    Other,
}

impl fmt::Display for RequestErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidSubject => "invalid subject",
            Self::Encode => "failed to encode the request",
            Self::TimedOut => "request timed out",
            Self::NoResponders => "no responders",
            Self::Service => "service error",
            Self::Decode => "failed to decode the reply",
            Self::PermissionDenied => "permission denied",
            Self::Other => "request failed",
        })
    }
}

/// Error returned by [`Publisher::request`](crate::Publisher::request) and friends.
pub type RequestError = Error<RequestErrorKind>;

impl RequestError {
    /// The code and description a responder sent in its `Nats-Service-Error-Code` and
    /// `Nats-Service-Error` headers, when this is a [`RequestErrorKind::Service`] error.
    pub fn service_error(&self) -> Option<&ServiceError> {
        self.source.as_deref().and_then(|s| s.downcast_ref::<ServiceError>())
    }
}

/// Why a JetStream publish failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamPublishErrorKind {
    /// The subject is not a valid publish subject.
    InvalidSubject,
    /// The payload could not be encoded.
    Encode,
    /// No stream captures the subject.
    StreamNotFound,
    /// The subject is captured by another stream than the expected one.
    WrongExpectedStream,
    /// No acknowledgement from the stream in time.
    TimedOut,
    /// The message is larger than the server accepts.
    MaxPayloadExceeded,
    /// The server denies this connection publishing to the subject (named in the
    /// error); needs [`Publisher::events`](crate::Publisher::events).
    PermissionDenied,
    /// Any other failure.
    Other,
}

impl fmt::Display for StreamPublishErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidSubject => "invalid subject",
            Self::Encode => "failed to encode the payload",
            Self::StreamNotFound => "no stream captures the subject",
            Self::WrongExpectedStream => "the subject belongs to another stream than expected",
            Self::TimedOut => "no acknowledgement from the stream in time",
            Self::MaxPayloadExceeded => "message larger than the server's max_payload",
            Self::PermissionDenied => "permission denied",
            Self::Other => "JetStream publish failed",
        })
    }
}

impl StreamPublishErrorKind {
    /// The `error.type` recorded on the span.
    pub(crate) fn error_type(self) -> &'static str {
        match self {
            Self::InvalidSubject => "invalid_subject",
            Self::Encode => "encode",
            Self::StreamNotFound => "stream_not_found",
            Self::WrongExpectedStream => "wrong_expected_stream",
            Self::TimedOut => "timeout",
            Self::MaxPayloadExceeded => "max_payload_exceeded",
            Self::PermissionDenied => "permission_denied",
            Self::Other => "_OTHER",
        }
    }
}

/// Error returned by [`Publisher::publish_to_stream`](crate::Publisher::publish_to_stream).
pub type StreamPublishError = Error<StreamPublishErrorKind>;

/// A service error with an explicit code: returned by handlers, and what
/// [`RequestError::service_error`](crate::RequestError::service_error) gives back on
/// the requesting side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    code: u16,
    description: String,
}

impl ServiceError {
    /// An error answered with `code` and `description`.
    pub fn new(code: u16, description: impl Into<String>) -> Self {
        Self { code, description: description.into() }
    }

    /// The code (`Nats-Service-Error-Code`).
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The description (`Nats-Service-Error`).
    pub fn description(&self) -> &str {
        &self.description
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

impl std::error::Error for ServiceError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// async-nats' errors print their source in their own message and give
    /// it through `source()` as well: the chain says it once.
    #[test]
    fn a_cause_its_error_already_printed_is_said_once() {
        use async_nats::jetstream::context::{GetStreamError, GetStreamErrorKind};
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        let nats = GetStreamError::with_source(GetStreamErrorKind::Request, io);
        assert_eq!(nats.to_string(), "request error: timed out");
        let e = ServeError::with_source(ServeErrorKind::StreamNotFound, nats).context("handler `a`");
        assert_eq!(format!("{e:#}"), "stream not found (handler `a`): request error: timed out");
    }

    /// A cause that does not repeat its own is followed by it.
    #[test]
    fn a_cause_that_does_not_print_its_source_is_followed_by_it() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("outer")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = ServeError::with_source(ServeErrorKind::Flush, Outer(std::io::Error::other("inner")));
        assert_eq!(format!("{e:#}"), "failed to flush replies: outer: inner");
    }
}
