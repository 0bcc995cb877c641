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

use std::fmt;

use bytes::Bytes;

/// A message type with a subject template (`orders.{region}.created`).
pub trait NatsMessage: Sized {
    /// The template, with `{field}` captures.
    const TEMPLATE: &'static str;
    /// The template with every capture as `*`: what subscribers subscribe to.
    const PATTERN: &'static str;
    /// The stream the type is published to, when it is tied to one.
    const STREAM: Option<&'static str> = None;

    /// Appends the concrete subject of this value to `out`.
    fn write_subject(&self, out: &mut String) -> Result<(), SubjectValueError>;

    /// The concrete subject of this value.
    fn subject(&self) -> Result<String, SubjectValueError> {
        let mut out = String::with_capacity(Self::TEMPLATE.len() + 16);
        self.write_subject(&mut out)?;
        Ok(out)
    }

    /// Encodes the value (JSON by default).
    fn encode(&self) -> Result<Bytes, CodecError>;

    /// Decodes a payload (JSON by default).
    fn decode(payload: &[u8]) -> Result<Self, CodecError>;
}

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
        match nats_otel_subject::validate_token_value(&out[start..]) {
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
pub struct CodecError(pub(crate) crate::BoxError);

impl CodecError {
    /// Wraps the codec's own error.
    pub fn new(error: impl Into<crate::BoxError>) -> Self {
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

/// JSON, the default codec of derived messages.
pub fn json_encode<T: serde::Serialize>(value: &T) -> Result<Bytes, CodecError> {
    serde_json::to_vec(value).map(Bytes::from).map_err(CodecError::new)
}

/// JSON, the default codec of derived messages.
pub fn json_decode<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, CodecError> {
    serde_json::from_slice(payload).map_err(CodecError::new)
}

/// Decodes a typed message argument (used by the derive's `FromMessage` impl).
#[doc(hidden)]
pub fn extract<M: NatsMessage>(incoming: &crate::Incoming) -> Result<M, crate::Rejection> {
    M::decode(incoming.payload()).map_err(|e| {
        crate::Rejection::new(
            std::any::type_name::<M>(),
            format!("invalid `{}` payload: {e}", std::any::type_name::<M>()),
        )
    })
}
