//! nats-otel's W3C propagator against the SDK's, on arbitrary input: the same
//! headers must give the same span context, and the same context the same headers.
#![no_main]

use std::collections::HashMap;
use std::str::FromStr;

use libfuzzer_sys::fuzz_target;
use nats_otel_runtime::trace_context::TraceContextPropagator;
use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator as SdkTraceContext;

// Input: `traceparent`, then `\n` and `tracestate` if present (readable seeds);
// its first 25 bytes are also the ids and flags of a context to inject.
fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (traceparent, tracestate) = match text.split_once('\n') {
        Some((parent, state)) => (parent, Some(state)),
        None => (&*text, None),
    };
    let mut headers = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    if let Some(state) = tracestate {
        headers.insert("tracestate".to_owned(), state.to_owned());
    }
    let ours = TraceContextPropagator::new().extract(&headers);
    let sdk = SdkTraceContext::new().extract(&headers);
    assert_eq!(ours.span().span_context(), sdk.span().span_context(), "extracted from {headers:?}");

    let mut ids = [0u8; 25];
    for (id, byte) in ids.iter_mut().zip(data) {
        *id = *byte;
    }
    let mut trace_id = [0u8; 16];
    trace_id.copy_from_slice(&ids[..16]);
    let mut span_id = [0u8; 8];
    span_id.copy_from_slice(&ids[16..24]);
    let state = TraceState::from_str(tracestate.unwrap_or("")).unwrap_or_default();
    let span_context = SpanContext::new(
        TraceId::from_bytes(trace_id),
        SpanId::from_bytes(span_id),
        TraceFlags::new(ids[24]),
        true,
        state,
    );
    let cx = Context::new().with_remote_span_context(span_context);
    let (mut ours, mut sdk) = (HashMap::new(), HashMap::new());
    TraceContextPropagator::new().inject_context(&cx, &mut ours);
    SdkTraceContext::new().inject_context(&cx, &mut sdk);
    assert_eq!(ours, sdk);
});
