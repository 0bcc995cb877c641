//! `OTEL_SDK_DISABLED=true`: `telemetry::init()` installs no provider, so
//! nothing is recorded (and nats-otel skips span work), while contexts still
//! propagate. A binary of its own: it installs the global subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(unsafe_code)] // `std::env::set_var`, before anything reads the environment.

use std::collections::HashMap;

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
    TracerProvider as _,
};

#[tokio::test]
async fn a_disabled_sdk_records_nothing_but_still_propagates() {
    for (key, value) in [("OTEL_SDK_DISABLED", "true"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")]
    {
        // SAFETY: first thing this single-test binary does.
        unsafe { std::env::set_var(key, value) };
    }
    let telemetry = nats_otel_runtime::telemetry::init().expect("init");
    assert!(!telemetry.is_exporting());

    // The global tracer is the no-op one: a span it starts has no context of its own.
    let span = opentelemetry::global::tracer_provider().tracer("app").start("work");
    assert!(!span.span_context().is_valid(), "a span was recorded: {:?}", span.span_context());

    // W3C propagation still works: a remote parent goes out in the headers.
    let parent =
        SpanContext::new(TraceId::from(7), SpanId::from(9), TraceFlags::SAMPLED, true, TraceState::NONE);
    let cx = opentelemetry::Context::new().with_remote_span_context(parent);
    let mut headers = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut headers));
    assert_eq!(
        headers.get("traceparent").map(String::as_str),
        Some("00-00000000000000000000000000000007-0000000000000009-01")
    );
}
