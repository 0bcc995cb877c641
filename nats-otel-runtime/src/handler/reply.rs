//! What a handler returns, and how it becomes a reply and a span status.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;

use async_nats::HeaderMap;
use bytes::Bytes;
use serde::Serialize;

use super::extract::{Json, Rejection};
use super::settlement::Retry;
pub use crate::error::ServiceError;

/// A successful handler's answer to a request: the reply payload and headers.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub(crate) payload: Bytes,
    pub(crate) headers: Option<HeaderMap>,
    /// A batch handler's failed messages, by position (see `BatchOutcome`).
    pub(crate) failed_items: Option<Box<[(usize, Failure)]>>,
}

impl Reply {
    /// A reply carrying `payload`.
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Self { payload: payload.into(), headers: None, failed_items: None }
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
            retry: Retry::Never,
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
    fn retry(&self) -> Retry {
        Retry::Backoff
    }

    /// The description sent in `Nats-Service-Error` and recorded on the span:
    /// `Display` by default; a boxed error adds its causes (`a: b: c`).
    fn message(&self) -> String {
        self.to_string()
    }
}

impl HandlerError for ServiceError {
    fn code(&self) -> u16 {
        self.code()
    }

    fn error_type(&self) -> Cow<'static, str> {
        Cow::Owned(self.code().to_string())
    }
}

impl HandlerError for Box<dyn std::error::Error + Send + Sync> {
    fn error_type(&self) -> Cow<'static, str> {
        Cow::Borrowed("_OTHER")
    }

    fn message(&self) -> String {
        let mut message = self.to_string();
        let said = message.clone();
        // Writing to a `String` cannot fail.
        let _ = crate::error::write_causes(&mut message, said, self.source());
        message
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
    pub(crate) retry: Retry,
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
            message: error.message(),
            retry: error.retry(),
        }
    }

    pub(crate) fn rejected(rejection: Rejection) -> Self {
        let (error_type, message, code) = rejection.into_parts();
        Self { kind: FailureKind::Rejected, code, error_type, message, retry: Retry::Never }
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
            retry: Retry::Never,
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
            retry: Retry::Backoff,
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
pub fn typed_reply<T: crate::handler::message::NatsPayload>(value: &T) -> Result<Reply, Failure> {
    value.encode().map(Reply::new).map_err(|e| Failure {
        kind: FailureKind::Reply,
        code: 500,
        error_type: Cow::Borrowed("nats_otel::CodecError"),
        message: format!("failed to encode the `{}` reply: {e}", std::any::type_name::<T>()),
        retry: Retry::Never,
    })
}

/// Header carrying the description of a failed request (NATS service API).
pub const NATS_SERVICE_ERROR: &str = "Nats-Service-Error";
/// Header carrying the code of a failed request (NATS service API).
pub const NATS_SERVICE_ERROR_CODE: &str = "Nats-Service-Error-Code";

/// The longest `Nats-Service-Error` description sent, in bytes: an error's text
/// can be anything, and the error reply must fit in the server's `max_payload`.
pub(crate) const MAX_SERVICE_ERROR_DESCRIPTION: usize = 1024;

/// The service error headers' size around the description: the version line,
/// both names, a five-digit code, line ends.
const SERVICE_ERROR_HEADERS_ROOM: usize = 66;

/// The NATS service API's error headers. The description is kept to one line (a
/// header value cannot hold line breaks) and cut on a character boundary at
/// [`MAX_SERVICE_ERROR_DESCRIPTION`] bytes, or less when `max_payload` is smaller,
/// so the error reply always fits.
pub(crate) fn service_error_headers(code: u16, description: &str, max_payload: usize) -> HeaderMap {
    let cap = MAX_SERVICE_ERROR_DESCRIPTION.min(max_payload.saturating_sub(SERVICE_ERROR_HEADERS_ROOM));
    let mut end = description.len().min(cap);
    while !description.is_char_boundary(end) {
        end -= 1;
    }
    let cut = description.get(..end).unwrap_or_default();
    let one_line: String = cut.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let mut headers = HeaderMap::new();
    headers.insert(NATS_SERVICE_ERROR, one_line.as_str());
    headers.insert(NATS_SERVICE_ERROR_CODE, code.to_string().as_str());
    headers
}

/// The size of a header block on the wire (`NATS/1.0`, one `name: value` line per
/// value, a blank line), as the server counts it against `max_payload`; none for
/// an empty map, which async-nats sends as a plain `PUB`.
pub(crate) fn headers_wire_len(headers: &HeaderMap) -> usize {
    if headers.is_empty() {
        return 0;
    }
    let lines: usize = headers
        .iter()
        .map(|(name, values)| {
            let name: &str = name.as_ref();
            values.iter().map(|v| name.len() + v.as_str().len() + ": \r\n".len()).sum::<usize>()
        })
        .sum();
    "NATS/1.0\r\n\r\n".len() + lines
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_boxed_error_is_described_with_its_causes_once() {
        let boxed: Box<dyn std::error::Error + Send + Sync> =
            Box::new(crate::error::ServeError::with_source(
                crate::error::ServeErrorKind::Subscribe,
                "permissions violation",
            ));
        assert_eq!(HandlerError::message(&boxed), "failed to subscribe: permissions violation");
        // An error that prints its cause itself is not repeated.
        let io: Box<dyn std::error::Error + Send + Sync> = Box::new(std::io::Error::other("disk full"));
        assert_eq!(HandlerError::message(&io), "disk full");
    }
    use super::*;

    #[test]
    fn header_wire_length_counts_every_line_as_sent() {
        assert_eq!(headers_wire_len(&HeaderMap::new()), 0);
        let mut headers = HeaderMap::new();
        headers.insert("A", "b");
        headers.append("A", "cd");
        headers.insert("Name", "");
        // "NATS/1.0\r\n" "A: b\r\n" "A: cd\r\n" "Name: \r\n" "\r\n"
        assert_eq!(headers_wire_len(&headers), 10 + 6 + 7 + 8 + 2);
    }

    #[test]
    fn service_error_descriptions_are_one_line_cut_on_a_char_boundary_and_fit_max_payload() {
        let headers = service_error_headers(404, "not\r\nfound", 1 << 20);
        assert_eq!(headers.get(NATS_SERVICE_ERROR).map(|v| v.as_str()), Some("not  found"));
        assert_eq!(headers.get(NATS_SERVICE_ERROR_CODE).map(|v| v.as_str()), Some("404"));

        let huge = format!("x{}", "é".repeat(10_000));
        let headers = service_error_headers(500, &huge, 1 << 20);
        let cut = headers.get(NATS_SERVICE_ERROR).map(|v| v.as_str().to_owned()).unwrap_or_default();
        assert_eq!(cut.len(), MAX_SERVICE_ERROR_DESCRIPTION - 1, "the cut falls inside an `é`");
        assert!(huge.starts_with(&cut));

        for max_payload in [0, 10, 66, 67, 100, 512, 1090, 1091, 4096] {
            let headers = service_error_headers(u16::MAX, &huge, max_payload);
            let size = headers_wire_len(&headers);
            assert!(
                size <= max_payload.max(SERVICE_ERROR_HEADERS_ROOM),
                "{size} bytes for max_payload {max_payload}"
            );
        }
    }
}
