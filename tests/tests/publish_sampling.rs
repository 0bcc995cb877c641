//! A publish the sampler drops: no span data, the context still propagated;
//! a publish it keeps: every attribute. Checked with the OpenTelemetry SDK, a
//! sampler that records what it was shown, and a plain async-nats subscriber
//! reading the headers on a real nats-server.
//!
//! Each test sets the global tracer provider: run with `cargo nextest` (a
//! process per test), as `scripts/test` does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use futures_util::StreamExt as _;
use nats_otel_runtime::Publisher;
use nats_otel_runtime::propagation::extract_parent;
use nats_otel_runtime::testing::{NatsServer, install_w3c_propagators};
use opentelemetry::trace::{Link, SpanKind, TraceContextExt as _, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{
    InMemorySpanExporter, SamplingDecision, SamplingResult, SdkTracerProvider, ShouldSample,
};

/// One decision: the span's name, its trace, the attribute keys shown.
type Decision = (String, TraceId, Vec<String>);

/// Keeps spans whose name has `kept`, drops the others; remembers what each
/// decision was shown.
#[derive(Debug, Clone, Default)]
struct Shown(Arc<Mutex<Vec<Decision>>>);

impl ShouldSample for Shown {
    fn should_sample(
        &self,
        parent: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        _kind: &SpanKind,
        attributes: &[KeyValue],
        _links: &[Link],
    ) -> SamplingResult {
        let keys = attributes.iter().map(|kv| kv.key.to_string()).collect();
        self.0.lock().unwrap().push((name.to_owned(), trace_id, keys));
        let decision =
            if name.contains("kept") { SamplingDecision::RecordAndSample } else { SamplingDecision::Drop };
        let trace_state = parent.map(|cx| cx.span().span_context().trace_state().clone()).unwrap_or_default();
        SamplingResult { decision, attributes: Vec::new(), trace_state }
    }
}

/// The global provider with the recording sampler and an in-memory exporter,
/// a server, a plain subscriber to `sampling.>` and a publisher made after the
/// provider (it resolves its tracer then).
struct Setup {
    shown: Shown,
    exporter: InMemorySpanExporter,
    provider: SdkTracerProvider,
    _server: NatsServer,
    subscriber: async_nats::Subscriber,
    publisher: Publisher,
}

impl Setup {
    async fn start() -> Self {
        install_w3c_propagators();
        let shown = Shown::default();
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_sampler(shown.clone())
            .with_simple_exporter(exporter.clone())
            .build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        let server = NatsServer::start().unwrap();
        let client = server.connect().await.unwrap();
        let subscriber = client.subscribe("sampling.>").await.unwrap();
        client.flush().await.unwrap();
        let publisher = Publisher::new(client);
        Self { shown, exporter, provider, _server: server, subscriber, publisher }
    }
}

#[tokio::test]
async fn an_unsampled_publish_records_nothing_and_still_propagates_its_context() {
    let Setup { shown, exporter, provider, _server, mut subscriber, publisher } = Setup::start().await;

    publisher.publish("sampling.dropped", "one").await.unwrap();
    publisher.publish("sampling.kept", "three").await.unwrap();
    let mut delivered = Vec::new();
    for _ in 0..2 {
        let message = tokio::time::timeout(std::time::Duration::from_secs(5), subscriber.next())
            .await
            .expect("both publishes arrive")
            .unwrap();
        let parent =
            extract_parent(message.headers.as_ref()).expect("every publish carries a valid traceparent");
        delivered.push((message.subject.to_string(), parent.span().span_context().clone()));
    }
    let _ = provider.force_flush();

    // The sampler decided each publish, and was shown the attributes that cost
    // nothing to make, not the destination (it is in the name).
    let shown = shown.0.lock().unwrap().clone();
    assert_eq!(shown.len(), 2, "{shown:?}");
    for (name, _, keys) in &shown {
        for key in ["messaging.system", "messaging.operation.name", "messaging.operation.type"] {
            assert!(keys.iter().any(|k| k == key), "{name}: the sampler saw {key}: {keys:?}");
        }
        assert!(
            keys.iter().all(|k| k != "messaging.destination.name"),
            "{name}: the destination is copied only into a recording span"
        );
    }

    // Dropped: its context travels unsampled, in the trace the sampler decided.
    let (_, dropped) = delivered.iter().find(|(subject, _)| subject == "sampling.dropped").unwrap();
    assert!(!dropped.is_sampled(), "the dropped publish propagates an unsampled context");
    assert_eq!(dropped.trace_id(), shown[0].1, "in the trace the sampler decided");

    // Kept: one span, with the destination added after the decision.
    let spans = exporter.get_finished_spans().unwrap();
    let names: Vec<_> = spans.iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, ["send sampling.kept"], "only the sampled publish has span data");
    let (_, kept) = delivered.iter().find(|(subject, _)| subject == "sampling.kept").unwrap();
    assert!(kept.is_sampled());
    assert_eq!(kept.span_id(), spans[0].span_context.span_id(), "the context sent is the span's");
    let attribute = |key: &str| {
        spans[0].attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
    };
    assert_eq!(attribute("messaging.destination.name").as_deref(), Some("sampling.kept"));
    assert_eq!(attribute("messaging.message.body.size").as_deref(), Some("5"));
    assert_eq!(attribute("messaging.system").as_deref(), Some("nats"));
    assert_eq!(attribute("server.address").as_deref(), Some("127.0.0.1"));
    assert!(attribute("messaging.client.id").is_some());
    let _ = provider.shutdown();
}

#[tokio::test]
async fn a_batch_copies_destinations_only_into_the_spans_the_sampler_keeps() {
    let Setup { shown, exporter, provider, _server, mut subscriber, publisher } = Setup::start().await;

    let batch = [
        nats_otel_runtime::publisher::Outgoing::new("sampling.kept", "a").message_id("m-1"),
        nats_otel_runtime::publisher::Outgoing::new("sampling.dropped", "b").message_id("m-2"),
    ];
    let results = publisher.publish_batch(batch).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    for _ in 0..2 {
        let message = tokio::time::timeout(std::time::Duration::from_secs(5), subscriber.next())
            .await
            .expect("both messages arrive")
            .unwrap();
        let parent = extract_parent(message.headers.as_ref()).expect("each message carries its context");
        let sampled = parent.span().span_context().is_sampled();
        assert_eq!(sampled, message.subject.as_str() == "sampling.kept", "{}", message.subject);
    }
    let _ = provider.force_flush();

    for (name, _, keys) in shown.0.lock().unwrap().iter() {
        assert!(keys.iter().all(|k| k != "messaging.destination.name"), "{name}: {keys:?}");
        assert!(keys.iter().all(|k| k != "messaging.message.id"), "{name}: {keys:?}");
    }
    let spans = exporter.get_finished_spans().unwrap();
    let names: Vec<_> = spans.iter().map(|s| s.name.to_string()).collect();
    assert_eq!(
        names,
        ["create sampling.kept"],
        "the batch's `send` span and the dropped message record nothing"
    );
    let attribute = |key: &str| {
        spans[0].attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
    };
    assert_eq!(attribute("messaging.destination.name").as_deref(), Some("sampling.kept"));
    assert_eq!(attribute("messaging.message.id").as_deref(), Some("m-1"));
    assert_eq!(attribute("messaging.message.body.size").as_deref(), Some("1"));
    let _ = provider.shutdown();
}
