//! # nats-otel
//!
//! Instrumented NATS handlers: put `#[nats_subscribe]` on an async fn and get the
//! subscription loop, trace-context extraction, OpenTelemetry messaging spans and
//! request replies, with the loop written once, here.
//!
//! ```no_run
//! use nats_otel_runtime::prelude::*;
//!
//! #[derive(Deserialize)]
//! struct QuoteRequest { sku: String }
//! #[derive(Serialize)]
//! struct Quote { cents: u64 }
//!
//! #[nats_subscribe("quotes.get", queue = "pricing")]
//! async fn quote(Json(req): Json<QuoteRequest>) -> Result<Json<Quote>, ServiceError> {
//!     match req.sku.as_str() {
//!         "A1" => Ok(Json(Quote { cents: 1250 })),
//!         other => Err(ServiceError::new(404, format!("unknown sku {other}"))),
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let client = async_nats::connect("nats://127.0.0.1:4222").await?;
//!     NatsService::new(client)
//!         .handler(quote)
//!         .run_until(async { tokio::signal::ctrl_c().await.ok(); })
//!         .await?;
//!     Ok(())
//! }
//! ```
//!
//! ## Concepts
//!
//! - **Handlers** are async fns whose arguments are [extractors](extract) and whose
//!   return is `()`, a reply, or `Result<reply, E: HandlerError>`. [`Handler`] is
//!   implemented for every such fn, so the macros are optional.
//! - **[`NatsService`]** subscribes every handler, runs each subscription with its
//!   concurrency limit, and drains gracefully on shutdown.
//! - **Spans** follow OpenTelemetry messaging semantic conventions v1.44: a
//!   `process {subject}` CONSUMER span per message, parented on the publisher's
//!   context from the headers (or linked, with `trace = "link"`); a `send {subject}`
//!   PRODUCER or `request {subject}` CLIENT span per [`Publisher`] call.
//!
//! ## Spans and attributes
//!
//! | span | kind | attributes |
//! |---|---|---|
//! | `process {subscription subject}` | CONSUMER | `messaging.system`=`nats`, `messaging.operation.name`=`process`, `messaging.operation.type`=`process`, `messaging.destination.name` (concrete subject), `messaging.destination.template` (when the subject has wildcards), `messaging.consumer.group.name` (queue group), `messaging.message.body.size`, `messaging.client.id`, `server.address`, `server.port`, `messaging.nats.reply_to` (requests) |
//! | `send {subject}` | PRODUCER | `messaging.system`, `messaging.operation.name`=`send`, `messaging.operation.type`=`send`, `messaging.destination.name`, `messaging.message.body.size`, `messaging.client.id`, `server.address`, `server.port` |
//! | `request {subject}` | CLIENT | as `send`, with `messaging.operation.name`=`request` |
//! | `process {filter or stream}` (JetStream) | CONSUMER | as core `process`, plus `messaging.destination.subscription.name` and `messaging.consumer.group.name` (durable), `messaging.message.id` (`Nats-Msg-Id`, else `{stream}:{sequence}`), `messaging.nats.jetstream.{stream, consumer, sequence, consumer_sequence, num_delivered, num_pending, ack}` |
//! | `ack\|nak\|term {filter or stream}` | CLIENT | `messaging.operation.type`=`settle`, `messaging.operation.name`, `messaging.destination.name` (the message's subject), `messaging.destination.template`, `messaging.message.id`, the consumer attributes, `messaging.nats.jetstream.ack` (no size attributes) |
//! | `send {subject}` (to a stream) | PRODUCER | as `send`, plus `messaging.message.id`, `messaging.nats.jetstream.{stream, sequence, duplicate}` from the PubAck, `messaging.nats.jetstream.publish_attempts`; a `publish retry` event per retried attempt ([`publisher::PublishRetry`]) |
//!
//! JetStream messages are settled by one table: see [`settle`].
//!
//! `messaging.client.id`, `server.address` and `server.port` are the connection's
//! when the span starts: after a reconnection (a failover to another server, say)
//! they name the new server and the client id it assigned. Metrics' `server.*`
//! attributes follow the connection too.
//!
//! Failures set status Error, `error.type`, and an `exception` event. With
//! `OTEL_SEMCONV_STABILITY_OPT_IN=messaging/dup`, spans also carry the older
//! `messaging.operation`, `net.peer.name` and `net.peer.port`.
//!
//! No payload bytes and no header values are recorded, unless an endpoint opts in
//! to an allow-list of headers or a capped prefix of the body: see [`capture`].
//!
//! ## Metrics, set-up, migration
//!
//! Metrics go through the global `MeterProvider`: see [`metrics`] for the table.
//! `telemetry::init` (feature `telemetry`) configures everything from the
//! standard `OTEL_*` environment. The repository's `docs/MIGRATION.md` compares
//! hand-written async-nats + OpenTelemetry code with the macros, side by side.
//!
//! ## Features
//!
//! With default features nats-otel depends on the OpenTelemetry **API** only,
//! as OpenTelemetry asks of instrumentation libraries: the application installs
//! the SDK (or `telemetry::init` does), and nats-otel reports to whatever
//! providers are global.
//!
//! | feature | default | brings |
//! |---|---|---|
//! | `macros` | yes | `#[nats_subscribe]`, `#[jetstream_consumer]`, `#[derive(NatsMessage, NatsPayload)]` |
//! | `telemetry` | | `telemetry::init()`: SDK, OTLP exporters and a `tracing` subscriber from `OTEL_*` |
//! | `testing` | | the test kit: a nats-server per test, a span recorder, a raw-protocol publisher |
//! | `logs` | | `log_context::LogContext`, a `tracing-subscriber` formatter that adds the trace id, span id and subject to log lines. On with `telemetry` |
//! | `span-events` | | `span_events::SpanEvents`, a `tracing` layer that records events on the current span |
//! | `dev-console` | | `tree`: finished spans as a tree in the terminal |
//! | `bound-metrics` | | instruments bound to each endpoint's attributes (no hashing per record); turns on the SDK's experimental binding, so it brings the SDK. On with `telemetry` and `testing` |
//!
//! The modules are laid out in layers: see the repository's
//! `docs/ARCHITECTURE.md`.

#![warn(missing_docs)]
// docs.rs (nightly, `--cfg docsrs`): each feature-gated item is badged with its feature.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod asyncapi;
pub mod broker_trace;
mod endpoint;
mod error;
pub mod events;
mod handler;
pub mod jetstream;
mod otel;
pub mod publisher;
mod service;
mod serving;
#[cfg(feature = "telemetry")]
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use endpoint::prefix;
pub use handler::{extract, message, subject_tokens};
pub use jetstream::{dead_letter, settle};
#[cfg(feature = "span-events")]
pub use otel::span_events;
#[cfg(feature = "dev-console")]
pub use otel::tree;
pub use otel::{TARGET, broker, capture, log_context, metrics, propagation, semconv, trace_context, tracer};

pub use async_nats::{HeaderMap, Message, Subject};
pub use bytes::Bytes;
pub use endpoint::NatsStream;
pub use endpoint::discovery::{EndpointInfo, StatsSnapshot};
pub use endpoint::{
    AckMode, DEFAULT_CONCURRENCY, DeadLetterRoute, Deliver, JetStreamConsumer, SettleRecord, Subscription,
    TraceMode,
};
/// What the macros expand to: named in [`NatsService::handler`]'s bounds, not used directly.
#[doc(hidden)]
pub use endpoint::{DeclaredHandler, Descriptor, Endpoint};
pub use error::{
    BoxError, BrokerTraceError, BrokerTraceErrorKind, Error, PublishError, PublishErrorKind, RequestError,
    RequestErrorKind, ServeError, ServeErrorKind, StreamPublishError, StreamPublishErrorKind,
};
pub use events::{ClientEvents, PermissionViolation};
pub use handler::kv::{KvEntry, KvOperation};
pub use handler::message::{NatsMessage, NatsPayload, NoReply, SubjectToken, SubjectValueError};
pub use handler::reply::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
pub use handler::subject_tokens::FromToken;
pub use handler::{
    Acker, Batch, BatchArgs, BatchArgument, BatchItem, BatchOutcome, Envelope, Extractor, Failure,
    FailureKind, FromMessage, FromRef, Handler, HandlerError, Incoming, IntoOutcome, IntoReply, ItemId,
    JetStreamInfo, Json, Outcome, Permanent, Rejection, Reply, Retry, RetryAfter, ServiceError, Settlement,
    State,
};
/// What the macros expand to: named in [`NatsService::handler`]'s bounds, not used directly.
#[doc(hidden)]
pub use handler::{Declaration, Declared, DeclaredArgs};
#[cfg(feature = "macros")]
#[doc(inline)]
pub use nats_otel_macros::{
    NatsMessage, NatsPayload, NatsStream, jetstream_consumer, kv_watch, nats_subscribe, service_name,
    service_version,
};
/// The OpenTelemetry context (`opentelemetry::Context`) under a name that lives
/// next to `anyhow::Context`: as an extractor it is the handler's `process` span.
pub use opentelemetry::Context as TraceContext;
pub use publisher::Publisher;
pub use service::{DEFAULT_SHUTDOWN_TIMEOUT, NatsService, ServiceHandle, Started};

/// Everything a handler module usually needs.
pub mod prelude {
    pub use crate::{
        Batch, BatchOutcome, Bytes, Envelope, HandlerError, HeaderMap, JetStreamInfo, Json, KvEntry,
        KvOperation, Message, NatsService, Permanent, Publisher, RetryAfter, ServiceError, State, Subject,
        TraceContext, TraceMode,
    };
    #[cfg(feature = "macros")]
    pub use crate::{NatsMessage, NatsPayload, NatsStream, jetstream_consumer, kv_watch, nats_subscribe};
    pub use serde::{Deserialize, Serialize};
}

/// Entry points for the fuzz targets in `fuzz/`. Not public API: no semver guarantees.
#[doc(hidden)]
pub mod __fuzz {
    /// The parent context a JSON envelope payload carries, as `Envelope<T>` handlers read it.
    pub fn envelope_parent(payload: &[u8]) -> Option<crate::TraceContext> {
        crate::otel::propagation::envelope_parent(payload)
    }

    /// The attributes an endpoint capturing the headers `names` and `body_cap`
    /// bytes of body records for a message.
    pub fn capture_attributes(
        names: &[&str],
        body_cap: usize,
        headers: &crate::HeaderMap,
        payload: &[u8],
    ) -> Vec<opentelemetry::KeyValue> {
        crate::otel::capture::fuzz_attributes(names, body_cap, headers, payload)
    }
}

/// Items the macros expand to. Not public API: no semver guarantees.
#[doc(hidden)]
pub mod __private {
    pub use crate::endpoint::{
        AckMode, DeadLetterRoute, Deliver, Descriptor, Endpoint, JetStreamConsumer, KvHistory, SettleRecord,
        Subscription, TraceMode,
    };
    pub use crate::handler::subject_tokens::capture;
    pub use crate::handler::{BatchArgument, Declaration, Declared};
    pub use core::time::Duration;

    pub use crate::handler::message::{
        Codec, JsonCodec, NatsMessage, NatsPayload, NoReply, RawCodec, ReturnsReply, SubjectToken,
        SubjectValueError, extract,
    };
    pub use crate::handler::reply::typed_reply;
    pub use crate::handler::shape::{HandlerShape, PayloadShape, Probe, Schemas};

    /// The traits the expansions resolve [`Probe`] methods with.
    pub mod probe {
        pub use crate::handler::shape::{ByKind, NoSchema, SchemaOf, Silent, WithSchema};
    }
    pub use crate::{Extractor, FromMessage, Incoming, IntoOutcome, IntoReply, Outcome, Rejection};

    /// Compile-time check that a handler argument is an extractor.
    pub const fn assert_extractor<T: crate::Extractor>() {}

    /// Compile-time check that a batch handler's argument reads the batch.
    pub const fn assert_batch_argument<T: crate::BatchArgument>() {}

    /// Compile-time check that a handler's subject lies within its message type's
    /// pattern; fails the build with `failure`.
    #[allow(clippy::panic)] // only ever evaluated at compile time, in a `const _`
    pub const fn assert_covers(message_pattern: &str, handler_subject: &str, failure: &str) {
        if !nats_otel_rules::covers(message_pattern, handler_subject) {
            panic!("{}", failure);
        }
    }

    /// Compile-time check that a consumer's filter lies within its declared
    /// stream's subjects; fails the build with `failure`.
    #[allow(clippy::panic)] // only ever evaluated at compile time, in a `const _`
    pub const fn assert_in_stream(subjects: &[&str], filter: &str, failure: &str) {
        if !crate::endpoint::stream::filter_in_stream(subjects, filter) {
            panic!("{}", failure);
        }
    }

    pub use crate::endpoint::NatsStream;
    pub use async_nats::jetstream::stream::{Config as StreamConfig, RetentionPolicy, StorageType};

    /// Compile-time check that a handler of request type `M` returns its reply type.
    pub const fn assert_returns_reply<M: NatsMessage, O: ReturnsReply<M::Reply>>() {}

    /// Compile-time check that a handler's return type is an outcome.
    pub const fn assert_outcome<T: crate::IntoOutcome>() {}
}
