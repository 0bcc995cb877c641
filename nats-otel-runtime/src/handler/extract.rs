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
//! | [`TraceContext`](crate::TraceContext) | the OpenTelemetry context of the `process` span: `cx.span()` to add attributes or events, or pass it to outbound calls | never |
//! | [`Envelope<T>`] | `data` of a `{"traceparent", "tracestate", "data"}` JSON envelope | the payload is not such an envelope |

use std::borrow::Cow;
use std::fmt;

use async_nats::{HeaderMap, Message, Subject};
use bytes::Bytes;
use opentelemetry::Context;
use serde::de::DeserializeOwned;

use super::incoming::Incoming;

/// Marks a type that can be a handler argument.
///
/// It carries no methods; it exists so that the macros can check each argument of a
/// handler on its own, independently of the service's state type, and point at the
/// argument that is not an extractor. Handlers need it with and without the macros,
/// so an extractor works the same in both: implement it next to [`FromMessage`].
///
/// Without it, a plain async fn taking the type is not a handler either:
///
/// ```compile_fail
/// use nats_otel_runtime::{FromMessage, Incoming, Rejection, NatsService};
///
/// struct Tenant;
///
/// impl<S> FromMessage<S> for Tenant {
///     fn from_message(_: &Incoming, _: &S) -> Result<Self, Rejection> {
///         Ok(Tenant)
///     }
/// }
///
/// async fn on_order(_tenant: Tenant) {}
///
/// fn register(client: async_nats::Client) -> NatsService {
///     NatsService::new(client).subscribe("orders.*", on_order)
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a nats-otel extractor",
    label = "this argument cannot be taken from a NATS message",
    note = "handler arguments must implement `nats_otel_runtime::FromMessage` and `nats_otel_runtime::Extractor`",
    note = "an argument named like a `{{capture}}` of the handler's subject is parsed from that token instead",
    note = "built-in extractors: `Json<T>`, `Bytes`, `String`, `Subject`, `HeaderMap`, `Message`, `State<T>`, `TraceContext`, `Envelope<T>`, for JetStream `JetStreamInfo` and `Acker`, for key-value watches `KvEntry<T>`",
    note = "`Batch<T>` is for batch handlers: give `#[jetstream_consumer]` a `batch_size`"
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
///
/// async fn on_order(Tenant(tenant): Tenant) {}
///
/// fn register(client: async_nats::Client) -> nats_otel_runtime::NatsService {
///     nats_otel_runtime::NatsService::new(client).subscribe("orders.*", on_order)
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

/// Shared application state, set with [`NatsService::state`](crate::NatsService::state).
///
/// `T` is the service's state or a part of it that implements [`FromRef`].
/// Each message gets its own clone, so keep the state cheap to clone: data
/// shared by every message goes in an [`Arc`](std::sync::Arc) (a pool or a
/// client usually is one already).
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Arc;
/// use nats_otel_runtime::State;
///
/// #[derive(Clone)]
/// struct Prices(Arc<HashMap<String, u64>>); // one map, shared: a clone is a count
/// async fn handle(State(prices): State<Prices>) {}
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
/// Only `data` decides whether the message is accepted: a trace field that is not
/// a string (`"tracestate": 7`) is read as absent, and one that is not a valid
/// trace context gives a new root span, as bad trace headers do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<T> {
    /// The decoded `data` field.
    pub data: T,
    /// The envelope's `traceparent`, when present as a string (the first one, if
    /// repeated).
    pub traceparent: Option<String>,
    /// The envelope's `tracestate`, when present as a string (the first one, if
    /// repeated).
    pub tracestate: Option<String>,
}

impl<T> Extractor for Envelope<T> {}

impl<S, T: DeserializeOwned> FromMessage<S> for Envelope<T> {
    const TRACE_CONTEXT_IN_BODY: bool = true;

    fn from_message(incoming: &Incoming, _: &S) -> Result<Self, Rejection> {
        let invalid =
            |e: serde_json::Error| Rejection::new("serde_json::Error", format!("invalid JSON envelope: {e}"));
        let wire: EnvelopeWire<'_, T> = serde_json::from_slice(incoming.payload()).map_err(invalid)?;
        let data = match wire.data {
            Some(data) => data,
            // As a derived struct does: an absent `data` is `None` for an `Option`.
            None => T::deserialize(serde_json::Value::Null)
                .map_err(|_| invalid(serde::de::Error::missing_field("data")))?,
        };
        Ok(Envelope {
            data,
            traceparent: wire.traceparent.map(Cow::into_owned),
            tracestate: wire.tracestate.map(Cow::into_owned),
        })
    }
}

/// An envelope as sent: `data` typed, the trace fields lenient. Its own
/// `Deserialize` (rather than a derive) so that a trace field of another type
/// than a string, or a repeated one, never fails the whole envelope.
struct EnvelopeWire<'de, T> {
    traceparent: Option<Cow<'de, str>>,
    tracestate: Option<Cow<'de, str>>,
    data: Option<T>,
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for EnvelopeWire<'de, T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EnvelopeVisitor(std::marker::PhantomData))
    }
}

struct EnvelopeVisitor<T>(std::marker::PhantomData<fn() -> T>);

impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for EnvelopeVisitor<T> {
    type Value = EnvelopeWire<'de, T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with a `data` field")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut wire = EnvelopeWire { traceparent: None, tracestate: None, data: None };
        while let Some(key) = map.next_key::<EnvelopeKey>()? {
            match key {
                EnvelopeKey::Traceparent => {
                    let TraceField(value) = map.next_value()?;
                    wire.traceparent = wire.traceparent.or(value);
                }
                EnvelopeKey::Tracestate => {
                    let TraceField(value) = map.next_value()?;
                    wire.tracestate = wire.tracestate.or(value);
                }
                EnvelopeKey::Data if wire.data.is_some() => {
                    return Err(serde::de::Error::duplicate_field("data"));
                }
                EnvelopeKey::Data => wire.data = Some(map.next_value()?),
                EnvelopeKey::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(wire)
    }
}

/// A field name of the envelope.
enum EnvelopeKey {
    Traceparent,
    Tracestate,
    Data,
    Other,
}

impl<'de> serde::Deserialize<'de> for EnvelopeKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = EnvelopeKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<EnvelopeKey, E> {
                Ok(match key {
                    "traceparent" => EnvelopeKey::Traceparent,
                    "tracestate" => EnvelopeKey::Tracestate,
                    "data" => EnvelopeKey::Data,
                    _ => EnvelopeKey::Other,
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// A trace field's value: the string, or `None` for any other JSON value, which
/// is skipped without building it (nested arrays or objects cost no recursion).
struct TraceField<'de>(Option<Cow<'de, str>>);

impl<'de> serde::Deserialize<'de> for TraceField<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TraceFieldVisitor)
    }
}

struct TraceFieldVisitor;

impl<'de> serde::de::Visitor<'de> for TraceFieldVisitor {
    type Value = TraceField<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(TraceField(Some(Cow::Borrowed(v))))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(TraceField(Some(Cow::Owned(v.to_owned()))))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(TraceField(Some(Cow::Owned(v))))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(TraceField(None))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(TraceField(None))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(TraceField(None))
    }

    fn visit_i128<E>(self, _: i128) -> Result<Self::Value, E> {
        Ok(TraceField(None))
    }

    fn visit_u128<E>(self, _: u128) -> Result<Self::Value, E> {
        Ok(TraceField(None))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(TraceField(None))
    }

    fn visit_bytes<E>(self, _: &[u8]) -> Result<Self::Value, E> {
        Ok(TraceField(None))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(TraceField(None))
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(TraceField(None))
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(TraceField(None))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
        Ok(TraceField(None))
    }
}

/// The trace fields of a JSON envelope payload, as sent (`data` skipped, not
/// decoded); read by the `process` span for handlers that take an `Envelope`.
pub(crate) fn envelope_trace_fields(payload: &[u8]) -> Option<TraceFields<'_>> {
    let fields: EnvelopeWire<'_, serde::de::IgnoredAny> = serde_json::from_slice(payload).ok()?;
    Some(TraceFields { traceparent: fields.traceparent, tracestate: fields.tracestate })
}

/// An envelope's `traceparent` and `tracestate`, when strings.
pub(crate) struct TraceFields<'a> {
    pub(crate) traceparent: Option<Cow<'a, str>>,
    pub(crate) tracestate: Option<Cow<'a, str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming(payload: &str) -> Incoming {
        let message = Message {
            subject: "s".into(),
            reply: None,
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            headers: None,
            status: None,
            description: None,
            length: payload.len(),
        };
        Incoming::new(message, Context::new())
    }

    fn envelope<T: DeserializeOwned>(payload: &str) -> Result<Envelope<T>, Rejection> {
        <Envelope<T> as FromMessage<()>>::from_message(&incoming(payload), &())
    }

    #[test]
    fn envelope_trace_fields_of_another_type_are_read_as_absent() {
        let read = envelope::<u32>(r#"{"tracestate": 7, "traceparent": {"a": [1]}, "data": 3}"#).ok();
        assert_eq!(read, Some(Envelope { data: 3, traceparent: None, tracestate: None }));
        let read =
            envelope::<u32>(r#"{"traceparent": 1, "traceparent": "tp", "tracestate": "a\"b", "data": 3}"#)
                .ok()
                .map(|e| (e.traceparent, e.tracestate));
        assert_eq!(
            read,
            Some((Some("tp".to_owned()), Some("a\"b".to_owned()))),
            "the first string, unescaped"
        );
    }

    #[test]
    fn envelope_data_alone_decides_acceptance() {
        assert!(envelope::<u32>(r#"{"data": "x"}"#).is_err());
        assert!(
            envelope::<u32>(r#"{"tracestate": "k=v"}"#)
                .is_err_and(|e| e.message().contains("missing field `data`"))
        );
        assert!(envelope::<u32>(r#"{"data": 1, "data": 2}"#).is_err());
        assert!(envelope::<u32>("[1, 2, 3]").is_err());
        assert!(envelope::<u32>(r#"{"data": 1"#).is_err());
        // As with a derived struct, an absent optional `data` is `None`.
        assert_eq!(envelope::<Option<u32>>("{}").ok().map(|e| e.data), Some(None));
        assert_eq!(envelope::<u32>(r#"{"other": [[[]]], "data": 1}"#).ok().map(|e| e.data), Some(1));
    }

    #[test]
    fn trace_fields_nested_deeply_are_skipped_without_recursion() {
        // Parenting on a valid traceparent next to a bad tracestate is checked end
        // to end, with the W3C propagator, in tests/tests/user_code_guards.rs.
        assert!(
            envelope_trace_fields(br#"{"traceparent": 12, "data": 1}"#)
                .is_some_and(|fields| fields.traceparent.is_none())
        );
        let deep = format!(r#"{{"traceparent": {}{}, "data": 1}}"#, "[".repeat(5_000), "]".repeat(5_000));
        assert!(envelope_trace_fields(deep.as_bytes()).is_some_and(|fields| fields.traceparent.is_none()));
        assert!(envelope::<u32>(&deep).is_ok(), "nesting in a trace field is skipped, not recursed into");
    }
}
