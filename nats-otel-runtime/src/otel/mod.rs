//! Telemetry: the spans, metrics and context propagation every endpoint and
//! publisher records, following the OpenTelemetry messaging semantic
//! conventions (see [`semconv`]).
//!
//! An attribute on `process` spans goes in [`spans`](self::spans) (and its name in
//! [`semconv`]); a metric in [`metrics`].

pub mod broker;
pub mod capture;
pub mod log_context;
pub mod metrics;
pub(crate) mod peer;
pub mod propagation;
pub mod semconv;
#[cfg(feature = "span-events")]
pub mod span_events;
pub(crate) mod spans;
pub mod trace_context;
pub mod tracer;
#[cfg(feature = "dev-console")]
pub mod tree;
pub(crate) mod unheard;

/// The tracing target of every log line nats-otel writes.
pub const TARGET: &str = "nats_otel";
