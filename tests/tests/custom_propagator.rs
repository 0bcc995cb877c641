//! Trace context goes through the globally installed propagator, whatever it is
//! (B3, Jaeger, a company header…). A binary of its own: the propagator is global.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;

use common::*;
use nats_otel_runtime::prelude::*;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

/// Carries the context as `x-trace: {trace id}/{span id}`.
#[derive(Debug)]
struct CompanyPropagator {
    fields: [String; 1],
}

impl TextMapPropagator for CompanyPropagator {
    fn inject_context(&self, cx: &opentelemetry::Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            injector.set("x-trace", format!("{}/{}", sc.trace_id(), sc.span_id()));
        }
    }

    fn extract_with_context(
        &self,
        cx: &opentelemetry::Context,
        extractor: &dyn Extractor,
    ) -> opentelemetry::Context {
        let Some((trace, span)) = extractor.get("x-trace").and_then(|v| v.split_once('/')) else {
            return cx.clone();
        };
        let (Ok(trace), Ok(span)) = (TraceId::from_hex(trace), SpanId::from_hex(span)) else {
            return cx.clone();
        };
        let sc = SpanContext::new(trace, span, TraceFlags::SAMPLED, true, TraceState::default());
        cx.with_remote_span_context(sc)
    }

    fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
        opentelemetry::propagation::text_map_propagator::FieldIter::new(&self.fields)
    }
}

#[nats_subscribe("company.events")]
async fn event(headers: HeaderMap) -> Json<HashMap<String, String>> {
    Json(headers.iter().map(|(k, v)| (k.to_string(), v[0].to_string())).collect())
}

#[tokio::test]
async fn a_custom_global_propagator_is_used_both_ways() {
    let h = start().await; // installs W3C…
    opentelemetry::global::set_text_map_propagator(CompanyPropagator { fields: ["x-trace".to_owned()] }); // …which the application replaces
    let running = spawn(NatsService::new(h.client.clone()).handler(event)).await;

    let reply = Publisher::new(h.client.clone()).request("company.events", "").await.unwrap();
    let seen: HashMap<String, String> = serde_json::from_slice(&reply.payload).unwrap();
    assert!(seen.contains_key("x-trace"), "injected with the custom propagator: {seen:?}");
    assert!(!seen.contains_key("traceparent"));

    let spans = h.recorder.wait_for(|s| count(s, "process company.events") == 1).await;
    let request = one(&spans, "request company.events");
    let process = one(&spans, "process company.events");
    assert_eq!(
        process.parent_span_id,
        request.span_context.span_id(),
        "extracted with the custom propagator"
    );
    running.stop().await.unwrap();
}
