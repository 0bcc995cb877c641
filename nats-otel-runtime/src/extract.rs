//! Extractors: the types a handler can take as arguments.
//!
//! Every argument of a handler implements [`FromMessage`]. Extractors read the
//! [`Incoming`] message by reference, so they can appear in any order and any
//! number of them can look at the same message.
//!
//! | extractor | gives | fails when |
//! |---|---|---|
//! | [`Json<T>`] | the payload decoded as JSON | the payload is not valid JSON for `T` |
//! | [`Bytes`] | the raw payload | never |
//! | [`String`] | the payload as text | the payload is not UTF-8 |
//! | [`Subject`] | the concrete subject | never |
//! | [`HeaderMap`] | the headers (empty when none) | never |
//! | [`Message`] | the raw async-nats message | never |
//! | [`State<T>`] | shared application state | never |
//! | [`Context`] | the OpenTelemetry context of the `process` span: `cx.span()` to add attributes or events, or pass it to outbound calls | never |
//! | [`Envelope<T>`] | `data` of a `{"traceparent", "tracestate", "data"}` JSON envelope | the payload is not such an envelope |

use std::borrow::Cow;
use std::fmt;

use async_nats::{HeaderMap, Message, Subject};
use bytes::Bytes;
use opentelemetry::Context;
use serde::de::DeserializeOwned;

use crate::Incoming;

/// Marks a type that can be a handler argument.
///
/// It carries no methods; it exists so that the macros can check each argument of a
/// handler on its own, independently of the service's state type, and point at the
/// argument that is not an extractor. Implement it next to [`FromMessage`] for your
/// own extractors.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a nats-otel extractor",
    label = "this argument cannot be taken from a NATS message",
    note = "handler arguments must implement `nats_otel_runtime::FromMessage` and `nats_otel_runtime::Extractor`",
    note = "an argument named like a `{{capture}}` of the handler's subject is parsed from that token instead",
    note = "built-in extractors: `Json<T>`, `Bytes`, `String`, `Subject`, `HeaderMap`, `Message`, `State<T>`, `Context`, `Envelope<T>`, and for JetStream `JetStreamInfo` and `Acker`"
)]
pub trait Extractor {}

/// Builds a handler argument from an incoming message and the service's state `S`.
///
/// # Example: a custom extractor
///
/// ```
/// use nats_otel_runtime::{Extractor, FromMessage, Incoming, Rejection};
///
/// /// The `Tenant` header, required.
/// struct Tenant(String);
///
/// impl Extractor for Tenant {}
///
/// impl<S> FromMessage<S> for Tenant {
///     fn from_message(incoming: &Incoming, _state: &S) -> Result<Self, Rejection> {
///         incoming
///             .headers()
///             .and_then(|h| h.get("Tenant"))
///             .map(|v| Tenant(v.as_str().to_owned()))
///             .ok_or_else(|| Rejection::new("missing_tenant", "the `Tenant` header is required"))
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be extracted from a NATS message with state `{S}`",
    note = "for `State<T>`, the service's state must provide `T` through `FromRef`"
)]
pub trait FromMessage<S>: Sized {
    /// Whether this extractor carries the trace context in the payload (as
    /// [`Envelope`] does); the service then reads it from there when the headers
    /// carry none, before it starts the `process` span.
    const TRACE_CONTEXT_IN_BODY: bool = false;

    /// Whether taking this extractor means the handler settles JetStream messages
    /// itself (as [`Acker`](crate::Acker) does).
    const SETTLES_ITSELF: bool = false;

    /// Extracts the value, or explains why the message cannot be handled.
    fn from_message(incoming: &Incoming, state: &S) -> Result<Self, Rejection>;
}

/// Why an extractor could not build its value: the message is answered with an
/// error (code 400 by default) and recorded as a failed `process` span.
#[derive(Debug, Clone)]
pub struct Rejection {
    error_type: Cow<'static, str>,
    message: String,
    code: u16,
}

impl Rejection {
    /// A rejection with a low-cardinality `error_type` (recorded as `error.type`)
    /// and a message for the span and the error reply.
    pub fn new(error_type: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self { error_type: error_type.into(), message: message.into(), code: 400 }
    }

    /// Sets the code sent in `Nats-Service-Error-Code` (default 400).
    #[must_use]
    pub fn with_code(mut self, code: u16) -> Self {
        self.code = code;
        self
    }

    /// The `error.type` recorded for this rejection.
    pub fn error_type(&self) -> &str {
        &self.error_type
    }

    /// The human-readable reason.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The service error code sent back to requesters.
    pub fn code(&self) -> u16 {
        self.code
    }

    pub(crate) fn into_parts(self) -> (Cow<'static, str>, String, u16) {
        (self.error_type, self.message, self.code)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Rejection {}

/// The payload as JSON, decoded into `T`; as a return value, `T` encoded as JSON.
///
/// ```
/// use nats_otel_runtime::Json;
/// # #[derive(serde::Deserialize, serde::Serialize)] struct Order { id: u64 }
/// async fn handle(Json(order): Json<Order>) -> Json<u64> {
///     Json(order.id)
/// }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T> Extractor for Json<T> {}

impl<S, T: DeserializeOwned> FromMessage<S> for Json<T> {
    fn from_message(incoming: &Incoming, _: &S) -> Result<Self, Rejection> {
        serde_json::from_slice(incoming.payload())
            .map(Json)
            .map_err(|e| Rejection::new("serde_json::Error", format!("invalid JSON payload: {e}")))
    }
}

impl Extractor for Bytes {}

impl<S> FromMessage<S> for Bytes {
    fn from_message(incoming: &Incoming, _: &S) -> Result<Self, Rejection> {
        Ok(incoming.payload().clone())
    }
}

impl Extractor for String {}

impl<S> FromMessage<S> for String {
    fn from_message(incoming: &Incoming, _: &S) -> Result<Self, Rejection> {
        std::str::from_utf8(incoming.payload())
            .map(str::to_owned)
            .map_err(|e| Rejection::new("core::str::Utf8Error", format!("payload is not UTF-8: {e}")))
    }
}

impl Extractor for Subject {}

impl<S> FromMessage<S> for Subject {
    fn from_message(incoming: &Incoming, _: &S) -> Result<Self, Rejection> {
        Ok(incoming.subject().clone())
    }
}

impl Extractor for HeaderMap {}

impl<S> FromMessage<S> for HeaderMap {
    fn from_message(incoming: &Incoming, _: &S) -> Result<Self, Rejection> {
        Ok(incoming.headers().cloned().unwrap_or_default())
    }
}

impl Extractor for Message {}

impl<S> FromMessage<S> for Message {
    fn from_message(incoming: &Incoming, _: &S) -> Result<Self, Rejection> {
        Ok(incoming.message().clone())
    }
}

impl Extractor for Context {}

/// The OpenTelemetry context of the `process` span: `cx.span()` adds attributes
/// and events to it; pass it to outbound calls (HTTP clients, database drivers)
/// that take a context explicitly. It is also the current context while the
/// handler runs.
impl<S> FromMessage<S> for Context {
    fn from_message(incoming: &Incoming, _: &S) -> Result<Self, Rejection> {
        Ok(incoming.context().clone())
    }
}

/// Shared application state, set with [`Service::state`](crate::Service::state).
///
/// `T` is the service's state or a part of it that implements [`FromRef`].
///
/// ```
/// use nats_otel_runtime::State;
/// #[derive(Clone)]
/// struct Db;
/// async fn handle(State(db): State<Db>) {}
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct State<T>(pub T);

impl<T> Extractor for State<T> {}

impl<S, T: FromRef<S>> FromMessage<S> for State<T> {
    fn from_message(_: &Incoming, state: &S) -> Result<Self, Rejection> {
        Ok(State(T::from_ref(state)))
    }
}

/// Takes a part out of the service's state, so handlers can ask for only what they use.
///
/// ```
/// use nats_otel_runtime::FromRef;
/// #[derive(Clone)] struct Db;
/// #[derive(Clone)] struct AppState { db: Db }
/// impl FromRef<AppState> for Db {
///     fn from_ref(app: &AppState) -> Db { app.db.clone() }
/// }
/// ```
pub trait FromRef<S> {
    /// Clones the part out of `state`.
    fn from_ref(state: &S) -> Self;
}

impl<T: Clone> FromRef<T> for T {
    fn from_ref(state: &T) -> T {
        state.clone()
    }
}

/// `data` of the JSON envelope that publishers without NATS headers use:
/// `{"traceparent": "00-…", "tracestate": "…", "data": {…}}`.
///
/// Taking an `Envelope<T>` makes the service read the trace context from the
/// envelope when the headers carry none, so such publishers' traces continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<T> {
    /// The decoded `data` field.
    pub data: T,
    /// The envelope's `traceparent`, when present.
    pub traceparent: Option<String>,
    /// The envelope's `tracestate`, when present.
    pub tracestate: Option<String>,
}

impl<T> Extractor for Envelope<T> {}

#[derive(serde::Deserialize)]
struct EnvelopeWire<T> {
    #[serde(default)]
    traceparent: Option<String>,
    #[serde(default)]
    tracestate: Option<String>,
    data: T,
}

impl<S, T: DeserializeOwned> FromMessage<S> for Envelope<T> {
    const TRACE_CONTEXT_IN_BODY: bool = true;

    fn from_message(incoming: &Incoming, _: &S) -> Result<Self, Rejection> {
        let wire: EnvelopeWire<T> = serde_json::from_slice(incoming.payload())
            .map_err(|e| Rejection::new("serde_json::Error", format!("invalid JSON envelope: {e}")))?;
        Ok(Envelope { data: wire.data, traceparent: wire.traceparent, tracestate: wire.tracestate })
    }
}

/// The trace fields of an envelope, without decoding `data`.
#[derive(serde::Deserialize)]
struct EnvelopeTraceFields {
    #[serde(default)]
    traceparent: Option<String>,
    #[serde(default)]
    tracestate: Option<String>,
}

/// The remote parent carried in a JSON envelope payload, when valid.
pub(crate) fn envelope_parent(payload: &[u8]) -> Option<Context> {
    use opentelemetry::propagation::Extractor as _;
    use opentelemetry::trace::TraceContextExt;

    struct Fields<'a>(&'a EnvelopeTraceFields);
    impl opentelemetry::propagation::Extractor for Fields<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            let value = match key {
                "traceparent" => self.0.traceparent.as_deref(),
                "tracestate" => self.0.tracestate.as_deref(),
                _ => None,
            }?;
            crate::propagation::filter_traceparent(key, value)
        }
        fn keys(&self) -> Vec<&str> {
            vec!["traceparent", "tracestate"]
        }
    }

    let fields: EnvelopeTraceFields = serde_json::from_slice(payload).ok()?;
    let carrier = Fields(&fields);
    carrier.get("traceparent")?;
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
    cx.span().span_context().is_valid().then_some(cx)
}
