//! Typed messages: a type that knows its subject, so publishers and subscribers
//! cannot disagree. Derive it with `#[derive(NatsMessage)]`.
//!
//! ```
//! use nats_otel_runtime::prelude::*;
//! use nats_otel_runtime::NatsMessage;
//!
//! #[derive(Serialize, Deserialize, NatsMessage)]
//! #[nats(subject = "orders.{region}.created")]
//! struct OrderCreated {
//!     region: String,
//!     id: u64,
//! }
//!
//! assert_eq!(OrderCreated::PATTERN, "orders.*.created");
//! let order = OrderCreated { region: "eu".into(), id: 7 };
//! assert_eq!(order.subject().unwrap(), "orders.eu.created");
//! // A value that is not one token is an error, never a wrong subject.
//! assert!(OrderCreated { region: "eu.west".into(), id: 7 }.subject().is_err());
//! ```
//!
//! # Requests and replies
//!
//! `reply = Quote` ties a request type to its reply type, which derives
//! [`NatsPayload`](trait@NatsPayload) (a payload with a codec but no subject).
//! [`Publisher::request_message`](crate::Publisher::request_message) then returns a
//! `Quote`, and a handler with `message = QuoteRequest` must return `Quote` (or
//! `Result<Quote, E>`), checked at compile time.
//!
//! ```
//! use nats_otel_runtime::prelude::*;
//!
//! #[derive(Serialize, Deserialize, NatsMessage)]
//! #[nats(subject = "quotes.{sku}.get", reply = Quote)]
//! struct QuoteRequest { sku: String, quantity: u32 }
//!
//! #[derive(Serialize, Deserialize, NatsPayload)]
//! struct Quote { cents: u64 }
//!
//! #[nats_subscribe(message = QuoteRequest)]
//! async fn quote(request: QuoteRequest) -> Quote {
//!     Quote { cents: 250 * u64::from(request.quantity) }
//! }
//!
//! # async fn demo(publisher: Publisher) -> Result<(), Box<dyn std::error::Error>> {
//! let quote: Quote = publisher.request_message(&QuoteRequest { sku: "A1".into(), quantity: 2 }).await?;
//! # Ok(()) }
//! ```
//!
//! # Codecs
//!
//! JSON by default; `#[nats(codec = "raw")]` for a newtype over bytes; or any type
//! implementing [`Codec`] for the message and its reply: `#[nats(codec = MyCodec)]`.

use std::fmt;

use bytes::Bytes;

use super::extract::Rejection;
use super::incoming::Incoming;
use super::reply::{HandlerError, IntoOutcome};
use super::shape::{PayloadShape, Schemas};

/// A type that is sent as a NATS payload, with its codec: every
/// [`NatsMessage`], and reply types (`#[derive(NatsPayload)]`).
///
/// Such a type can be a handler argument (decoded from the payload) and a
/// handler's return value (encoded as the reply).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a typed NATS payload",
    note = "derive `NatsPayload` (or `NatsMessage`) for it",
    note = "`NoReply` is the reply type of a message without `#[nats(reply = …)]`: events are published, not requested"
)]
pub trait NatsPayload: Sized {
    /// Encodes the value (JSON by default).
    fn encode(&self) -> Result<Bytes, CodecError>;

    /// Decodes a payload (JSON by default).
    fn decode(payload: &Bytes) -> Result<Self, CodecError>;

    /// How a contract describes this type; the derives fill in the codec's
    /// content type and, with the `schemars` feature, the type's schema.
    #[doc(hidden)]
    fn payload_shape(schemas: &mut Schemas) -> PayloadShape {
        let _ = schemas;
        PayloadShape::of::<Self>(None)
    }
}

/// A message type with a subject template (`orders.{region}.created`).
pub trait NatsMessage: NatsPayload {
    /// The template, with `{field}` captures.
    const TEMPLATE: &'static str;
    /// The template with every capture as `*`: what subscribers subscribe to.
    const PATTERN: &'static str;
    /// The stream the type is published to, when it is tied to one.
    const STREAM: Option<&'static str> = None;

    /// What a request of this type is answered with (`#[nats(reply = Quote)]`);
    /// [`NoReply`] for events.
    type Reply;

    /// Appends the concrete subject of this value to `out`.
    fn write_subject(&self, out: &mut String) -> Result<(), SubjectValueError>;

    /// The concrete subject of this value.
    fn subject(&self) -> Result<String, SubjectValueError> {
        let mut out = String::with_capacity(Self::TEMPLATE.len() + 16);
        self.write_subject(&mut out)?;
        Ok(out)
    }
}

/// The [`NatsMessage::Reply`] of messages that are not requests. It has no
/// values and no codec, so `Publisher::request_message` does not compile for
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoReply {}

/// Encodes and decodes payloads of type `T`: `#[nats(codec = MyCodec)]` uses it
/// for the message and its reply. [`JsonCodec`] is the default.
///
/// ```
/// use nats_otel_runtime::Bytes;
/// use nats_otel_runtime::message::{Codec, CodecError};
///
/// /// Plain UTF-8 text.
/// struct Text;
///
/// impl Codec<String> for Text {
///     fn encode(value: &String) -> Result<Bytes, CodecError> {
///         Ok(Bytes::copy_from_slice(value.as_bytes()))
///     }
///     fn decode(payload: &Bytes) -> Result<String, CodecError> {
///         String::from_utf8(payload.to_vec()).map_err(CodecError::new)
///     }
/// }
/// ```
pub trait Codec<T> {
    /// The content type of what it encodes (`application/json`), for contracts.
    const CONTENT_TYPE: Option<&'static str> = None;

    /// Encodes `value`.
    fn encode(value: &T) -> Result<Bytes, CodecError>;
    /// Decodes `payload`.
    fn decode(payload: &Bytes) -> Result<T, CodecError>;
}

/// JSON (serde_json), the default codec.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonCodec;

impl<T: serde::Serialize + serde::de::DeserializeOwned> Codec<T> for JsonCodec {
    const CONTENT_TYPE: Option<&'static str> = Some("application/json");

    fn encode(value: &T) -> Result<Bytes, CodecError> {
        serde_json::to_vec(value).map(Bytes::from).map_err(CodecError::new)
    }

    fn decode(payload: &Bytes) -> Result<T, CodecError> {
        serde_json::from_slice(payload).map_err(CodecError::new)
    }
}

/// The payload as it is, for newtypes over bytes (`struct Image(Bytes)`):
/// `#[nats(codec = "raw")]`. Encoding and decoding a `Bytes` copies nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl<T: Clone + Into<Bytes> + From<Bytes>> Codec<T> for RawCodec {
    const CONTENT_TYPE: Option<&'static str> = Some("application/octet-stream");

    fn encode(value: &T) -> Result<Bytes, CodecError> {
        Ok(value.clone().into())
    }

    fn decode(payload: &Bytes) -> Result<T, CodecError> {
        Ok(T::from(payload.clone()))
    }
}

/// What a handler of request type `M` may return: `M::Reply` or
/// `Result<M::Reply, E>`; anything for events ([`NoReply`]). Checked at compile
/// time by the handler macros with `message = M`.
#[diagnostic::on_unimplemented(
    message = "a handler of this request type must return `{R}`, not `{Self}`",
    label = "the message type declares `reply = {R}`",
    note = "return `{R}` or `Result<{R}, E>` where `E: HandlerError`"
)]
pub trait ReturnsReply<R> {}

impl<O: IntoOutcome> ReturnsReply<NoReply> for O {}
impl<R: NatsPayload> ReturnsReply<R> for R {}
impl<R: NatsPayload, E: HandlerError> ReturnsReply<R> for Result<R, E> {}

/// A field value rendered into one subject token: any `Display` type; the value
/// is checked at run time (no `.`, `*`, `>`, whitespace, not empty).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be rendered as a subject token",
    label = "this capture's field must implement `Display`",
    note = "captures like `{{region}}` render their field with `Display`: use a string, a number, or implement `Display`"
)]
pub trait SubjectToken {
    /// Appends the token to `out`.
    fn write_token(&self, field: &'static str, out: &mut String) -> Result<(), SubjectValueError>;
}

impl<T: fmt::Display + ?Sized> SubjectToken for T {
    fn write_token(&self, field: &'static str, out: &mut String) -> Result<(), SubjectValueError> {
        use fmt::Write as _;
        let start = out.len();
        let _ = write!(out, "{self}");
        match nats_otel_rules::validate_token_value(&out[start..]) {
            Ok(()) => Ok(()),
            Err(error) => {
                let value = out[start..].to_owned();
                out.truncate(start);
                Err(SubjectValueError { field, value, reason: error.message() })
            }
        }
    }
}

/// A field value that cannot be a subject token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectValueError {
    /// The field.
    pub field: &'static str,
    /// Its rendered value.
    pub value: String,
    /// Why it is not a token.
    pub reason: String,
}

impl fmt::Display for SubjectValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}` = {:?} cannot be a subject token: {}", self.field, self.value, self.reason)
    }
}

impl std::error::Error for SubjectValueError {}

/// A payload that could not be encoded or decoded.
#[derive(Debug)]
pub struct CodecError(pub(crate) crate::error::BoxError);

impl CodecError {
    /// Wraps the codec's own error.
    pub fn new(error: impl Into<crate::error::BoxError>) -> Self {
        Self(error.into())
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for CodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// Decodes a typed argument (used by the derives' `FromMessage` impls).
#[doc(hidden)]
pub fn extract<M: NatsPayload>(incoming: &Incoming) -> Result<M, Rejection> {
    M::decode(incoming.payload()).map_err(|e| {
        Rejection::new(
            std::any::type_name::<M>(),
            format!("invalid `{}` payload: {e}", std::any::type_name::<M>()),
        )
    })
}
