//! What a handler returns, and how it becomes a reply and a span status.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;

use async_nats::HeaderMap;
use bytes::Bytes;
use serde::Serialize;

use crate::Json;

/// A successful handler's answer to a request: the reply payload and headers.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub(crate) payload: Bytes,
    pub(crate) headers: Option<HeaderMap>,
}

impl Reply {
    /// A reply carrying `payload`.
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Self { payload: payload.into(), headers: None }
    }

    /// Adds headers to the reply.
    #[must_use]
    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.headers = Some(headers);
        self
    }
}

/// A value a handler can send back to a requester.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be sent as a reply",
    note = "replies can be `()`, `Json<T>`, `Bytes`, `Vec<u8>`, `String`, `&'static str`, `Reply` or a type deriving `NatsPayload`"
)]
pub trait IntoReply {
    /// Encodes the value.
    fn into_reply(self) -> Result<Reply, Failure>;
}

impl IntoReply for Reply {
    fn into_reply(self) -> Result<Reply, Failure> {
        Ok(self)
    }
}

impl IntoReply for () {
    fn into_reply(self) -> Result<Reply, Failure> {
        Ok(Reply::default())
    }
}

impl IntoReply for Bytes {
    fn into_reply(self) -> Result<Reply, Failure> {
        Ok(Reply::new(self))
    }
}

impl IntoReply for Vec<u8> {
    fn into_reply(self) -> Result<Reply, Failure> {
        Ok(Reply::new(self))
    }
}

impl IntoReply for String {
    fn into_reply(self) -> Result<Reply, Failure> {
        Ok(Reply::new(self))
    }
}

impl IntoReply for &'static str {
    fn into_reply(self) -> Result<Reply, Failure> {
        Ok(Reply::new(Bytes::from_static(self.as_bytes())))
    }
}

impl<T: Serialize> IntoReply for Json<T> {
    fn into_reply(self) -> Result<Reply, Failure> {
        serde_json::to_vec(&self.0).map(Reply::new).map_err(|e| Failure {
            kind: FailureKind::Reply,
            code: 500,
            error_type: Cow::Borrowed("serde_json::Error"),
            message: format!("failed to encode the reply as JSON: {e}"),
            retry: crate::Retry::Never,
        })
    }
}

/// An error a handler can return: how it is reported to requesters and on spans.
///
/// The defaults report code 500 and the error's type name as `error.type`, so most
/// error types need only `impl HandlerError for MyError {}`.
///
/// ```
/// use nats_otel_runtime::HandlerError;
///
/// #[derive(Debug)]
/// enum PricingError { UnknownSku, Unavailable }
///
/// impl std::fmt::Display for PricingError {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str(match self { Self::UnknownSku => "unknown sku", Self::Unavailable => "pricing unavailable" })
///     }
/// }
///
/// impl HandlerError for PricingError {
///     fn code(&self) -> u16 {
///         match self { Self::UnknownSku => 404, Self::Unavailable => 503 }
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned as a handler error",
    label = "this error type does not implement `HandlerError`",
    note = "add `impl nats_otel_runtime::HandlerError for {Self} {{}}` (replies with code 500), or override `code()` to choose the `Nats-Service-Error-Code`",
    note = "`ServiceError`, `Box<dyn Error + Send + Sync>`, `std::io::Error` and `String` implement it already"
)]
pub trait HandlerError: fmt::Display + Send + 'static {
    /// The code sent in the `Nats-Service-Error-Code` reply header.
    fn code(&self) -> u16 {
        500
    }

    /// The low-cardinality `error.type` recorded on the span.
    fn error_type(&self) -> Cow<'static, str> {
        Cow::Borrowed(std::any::type_name::<Self>())
    }

    /// For JetStream consumers: whether and when to redeliver the message (see
    /// [`settle`](crate::settle)). Wrap an error in [`Permanent`](crate::Permanent)
    /// or [`RetryAfter`](crate::RetryAfter) to choose per error.
    fn retry(&self) -> crate::Retry {
        crate::Retry::Backoff
    }
}

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

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

impl std::error::Error for ServiceError {}

impl HandlerError for ServiceError {
    fn code(&self) -> u16 {
        self.code
    }

    fn error_type(&self) -> Cow<'static, str> {
        Cow::Owned(self.code.to_string())
    }
}

impl HandlerError for Box<dyn std::error::Error + Send + Sync> {
    fn error_type(&self) -> Cow<'static, str> {
        Cow::Borrowed("_OTHER")
    }
}

impl HandlerError for std::io::Error {}

impl HandlerError for serde_json::Error {}

impl HandlerError for String {
    fn error_type(&self) -> Cow<'static, str> {
        Cow::Borrowed("_OTHER")
    }
}

impl HandlerError for &'static str {
    fn error_type(&self) -> Cow<'static, str> {
        Cow::Borrowed("_OTHER")
    }
}

impl HandlerError for Infallible {}

/// Why handling a message failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The handler returned an error.
    Handler,
    /// An extractor rejected the message (for example a payload that does not decode).
    Rejected,
    /// User code panicked: an extractor, the handler, or the encoding of its
    /// reply or error (`Serialize`, `Display`, `code`, …).
    Panicked,
    /// The handler's value could not be encoded as a reply, or the reply is
    /// larger than the server's `max_payload`.
    Reply,
}

/// A failed handling: what is recorded on the span and answered to a requester.
#[derive(Debug, Clone)]
pub struct Failure {
    pub(crate) kind: FailureKind,
    pub(crate) code: u16,
    pub(crate) error_type: Cow<'static, str>,
    pub(crate) message: String,
    pub(crate) retry: crate::Retry,
}

impl Failure {
    /// What failed.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// The service error code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The `error.type`.
    pub fn error_type(&self) -> &str {
        &self.error_type
    }

    /// The error message.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn from_error<E: HandlerError>(error: &E) -> Self {
        Self {
            kind: FailureKind::Handler,
            code: error.code(),
            error_type: error.error_type(),
            message: error.to_string(),
            retry: error.retry(),
        }
    }

    pub(crate) fn rejected(rejection: crate::Rejection) -> Self {
        let (error_type, message, code) = rejection.into_parts();
        Self { kind: FailureKind::Rejected, code, error_type, message, retry: crate::Retry::Never }
    }

    /// A caught panic. The payload is dropped here, guarded: its `Drop` is user
    /// code as well.
    pub(crate) fn caught(payload: Box<dyn std::any::Any + Send>) -> Self {
        let failure = Self::panicked(&*payload);
        drop_panic_payload(payload);
        failure
    }

    /// A reply the server would refuse: larger than its `max_payload`.
    pub(crate) fn too_large(size: usize, max_payload: usize) -> Self {
        Self {
            kind: FailureKind::Reply,
            code: 500,
            error_type: Cow::Borrowed("max_payload_exceeded"),
            message: format!("reply of {size} bytes exceeds the server's max_payload of {max_payload}"),
            retry: crate::Retry::Never,
        }
    }

    pub(crate) fn panicked(payload: &(dyn std::any::Any + Send)) -> Self {
        let what = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("a non-string panic payload");
        Self {
            kind: FailureKind::Panicked,
            code: 500,
            error_type: Cow::Borrowed("panic"),
            message: format!("handler panicked: {what}"),
            retry: crate::Retry::Backoff,
        }
    }
}

/// Drops a caught panic's payload; a panic in its `Drop` is caught too, and that
/// second payload leaked rather than dropped, so nothing unwinds out.
pub(crate) fn drop_panic_payload(payload: Box<dyn std::any::Any + Send>) {
    if let Err(again) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

/// The result of handling one message.
#[derive(Debug)]
pub enum Outcome {
    /// Handled; requests are answered with the reply.
    Success(Reply),
    /// Not handled; the failure is recorded and requests get an error reply.
    Failure(Failure),
}

/// A handler's return type: `()`, a reply value, or `Result<reply, error>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned from a nats-otel handler",
    note = "return `()`, a reply (`Json<T>`, `Bytes`, `String`, …) or `Result<reply, E>` where `E: HandlerError`"
)]
pub trait IntoOutcome {
    /// Converts the handler's value.
    fn into_outcome(self) -> Outcome;
}

impl<T: IntoReply, E: HandlerError> IntoOutcome for Result<T, E> {
    fn into_outcome(self) -> Outcome {
        match self.map_err(|e| Failure::from_error(&e)).and_then(IntoReply::into_reply) {
            Ok(reply) => Outcome::Success(reply),
            Err(failure) => Outcome::Failure(failure),
        }
    }
}

macro_rules! reply_outcome {
    ($($ty:ty $(where $param:ident: $bound:path)?),* $(,)?) => {$(
        impl$(<$param: $bound>)? IntoOutcome for $ty {
            fn into_outcome(self) -> Outcome {
                match self.into_reply() {
                    Ok(reply) => Outcome::Success(reply),
                    Err(failure) => Outcome::Failure(failure),
                }
            }
        }
    )*};
}

reply_outcome!((), Bytes, Vec<u8>, String, &'static str, Reply, Json<T> where T: Serialize);

/// The reply of a typed payload, encoded with its codec: what the derives'
/// `IntoReply` impls call.
#[doc(hidden)]
pub fn typed_reply<T: crate::message::NatsPayload>(value: &T) -> Result<Reply, Failure> {
    value.encode().map(Reply::new).map_err(|e| Failure {
        kind: FailureKind::Reply,
        code: 500,
        error_type: Cow::Borrowed("nats_otel::CodecError"),
        message: format!("failed to encode the `{}` reply: {e}", std::any::type_name::<T>()),
        retry: crate::Retry::Never,
    })
}
