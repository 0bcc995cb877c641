//! Trace-context extraction from untrusted message headers (and a JSON envelope
//! body), exactly as the runtime does it for every delivery: never panics, and
//! a parent is only ever taken from a well-formed `traceparent`.
#![no_main]

use std::str::FromStr;
use std::sync::Once;

use async_nats::HeaderMap;
use async_nats::header::{HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use nats_otel_runtime::propagation::{HeaderExtractor, extract_parent, is_well_formed_traceparent};
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt;

static PROPAGATORS: Once = Once::new();

// Input: header lines `name: value` separated by `\n`, then 0xFF and the payload,
// so seeds are readable files.
fuzz_target!(|data: &[u8]| {
    PROPAGATORS.call_once(|| {
        use opentelemetry::propagation::TextMapCompositePropagator;
        use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
        opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
        ]));
    });
    let (head, payload) = match data.iter().position(|&b| b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let pairs: Vec<(&str, &str)> = head
        .split('\n')
        .map(|line| line.split_once(':').map_or((line, ""), |(n, v)| (n, v.trim_start())))
        .collect();

    // What async-nats' wire parser can hand us: names and values it accepts.
    let mut headers = HeaderMap::new();
    for (name, value) in &pairs {
        let (Ok(name), Ok(value)) = (HeaderName::from_str(name), HeaderValue::from_str(value)) else {
            continue;
        };
        headers.append(name, value);
    }

    let extractor = HeaderExtractor(&headers);
    let keys = extractor.keys();
    for key in keys.iter().copied().chain(["traceparent", "tracestate", "baggage", "TRACEPARENT", ""]) {
        let _ = extractor.get(key);
        let _ = extractor.get_all(key);
    }
    let traceparent = extractor.get("traceparent");
    if let Some(value) = traceparent {
        assert!(is_well_formed_traceparent(value), "the extractor only shows well-formed traceparents");
    }
    for (_, value) in &pairs {
        let _ = is_well_formed_traceparent(value);
    }

    if let Some(cx) = extract_parent(Some(&headers)) {
        let span = cx.span();
        let span_context = span.span_context();
        assert!(span_context.is_valid() && span_context.is_remote());
        assert!(traceparent.is_some(), "a parent comes from a traceparent header");
    }
    let _ = extract_parent(None);

    // The JSON envelope path (`Envelope<T>` handlers) and opt-in capture.
    if let Some(cx) = nats_otel_runtime::__fuzz::envelope_parent(payload) {
        assert!(cx.span().span_context().is_valid());
    }
    let names: Vec<&str> = pairs.iter().map(|(name, _)| *name).take(4).collect();
    for cap in [1, 7, 64] {
        for attribute in nats_otel_runtime::__fuzz::capture_attributes(&names, cap, &headers, payload) {
            let _ = attribute;
        }
    }
});
