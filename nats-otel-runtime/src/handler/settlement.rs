//! What becomes of a JetStream delivery: how a failure asks to be retried, and
//! the settlement the consumer sends. The table that decides lives with the
//! consumer ([`settle`](crate::settle)).

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use super::reply::HandlerError;

/// Whether and when a failed message should be delivered again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Retry {
    /// Redeliver, with the consumer's backoff schedule.
    #[default]
    Backoff,
    /// Redeliver after this delay.
    After(Duration),
    /// Never redeliver: the failure is permanent.
    Never,
}

/// What is done with a JetStream message after its handler ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Processed: `+ACK`.
    Ack,
    /// Redeliver, after the delay if any: `-NAK`.
    Nak(Option<Duration>),
    /// Never redeliver: `+TERM`.
    Term,
    /// Publish to the dead-letter subject, then `+TERM`.
    DeadLetter,
}

impl Settlement {
    /// The name recorded as `messaging.nats.jetstream.ack`.
    pub fn as_str(self) -> &'static str {
        match self {
            Settlement::Ack => "ack",
            Settlement::Nak(_) => "nak",
            Settlement::Term => "term",
            Settlement::DeadLetter => "dead_letter",
        }
    }
}

/// An error that must not be retried: the message is termed (or dead-lettered).
///
/// ```
/// use nats_otel_runtime::{HandlerError, Permanent, ServiceError};
/// fn validate(total: i64) -> Result<(), Permanent<ServiceError>> {
///     if total < 0 { return Err(Permanent(ServiceError::new(422, "negative total"))); }
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permanent<E>(pub E);

impl<E: fmt::Display> fmt::Display for Permanent<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: HandlerError> HandlerError for Permanent<E> {
    fn code(&self) -> u16 {
        self.0.code()
    }
    fn error_type(&self) -> Cow<'static, str> {
        self.0.error_type()
    }
    fn retry(&self) -> Retry {
        Retry::Never
    }
}

/// An error to retry after a given delay, whatever the backoff schedule says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryAfter<E> {
    /// The error.
    pub error: E,
    /// How long until the message is delivered again.
    pub delay: Duration,
}

impl<E> RetryAfter<E> {
    /// Retry `error` after `delay`.
    pub fn new(error: E, delay: Duration) -> Self {
        Self { error, delay }
    }
}

impl<E: fmt::Display> fmt::Display for RetryAfter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl<E: HandlerError> HandlerError for RetryAfter<E> {
    fn code(&self) -> u16 {
        self.error.code()
    }
    fn error_type(&self) -> Cow<'static, str> {
        self.error.error_type()
    }
    fn retry(&self) -> Retry {
        Retry::After(self.delay)
    }
}
