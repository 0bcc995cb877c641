//! `#[nats_subscribe]` spans: names, kinds, parents, links and attributes, checked
//! on a real nats-server with the OpenTelemetry SDK's in-memory exporter.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use nats_otel_runtime::prelude::*;
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};

#[nats_subscribe("orders.*", queue = "billing")]
async fn on_order(Json(order): Json<serde_json::Value>) {
    tracing::info!(id = %order["id"], "billing the order");
    tracing::info_span!("charge card").in_scope(|| tracing::info!("charged"));
}

#[nats_subscribe(subject = "audit.events", trace = "link")]
async fn on_audit(_body: Bytes) {}

#[derive(Debug, Deserialize, PartialEq)]
struct Legacy {
    n: u32,
}

#[nats_subscribe("legacy.events")]
async fn on_legacy(envelope: Envelope<Legacy>, publisher: State<Publisher>) {
    assert_eq!(envelope.data, Legacy { n: 7 });
    let State(publisher) = publisher;
    publisher.publish("legacy.processed", "done").await.unwrap();
}

#[tokio::test]
async fn publish_then_process_is_one_trace_with_semconv_attributes() {
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(on_order)).await;

    let publisher = Publisher::new(h.client.clone());
    publisher.publish_json("orders.eu", &serde_json::json!({"id": 42})).await.unwrap();

    let spans = h.recorder.wait_for(|s| count(s, "process orders.*") == 1).await;
    let send = one(&spans, "send orders.eu");
    let process = one(&spans, "process orders.*");

    assert_eq!(send.span_kind, SpanKind::Producer);
    assert_eq!(process.span_kind, SpanKind::Consumer);
    assert_eq!(process.span_context.trace_id(), send.span_context.trace_id());
    assert_eq!(process.parent_span_id, send.span_context.span_id());
    assert!(process.parent_span_is_remote);
    assert_eq!(process.status, Status::Unset);

    let server_port = i64::from(h.server.port());
    for (key, want) in [
        ("messaging.system", "nats"),
        ("messaging.operation.name", "process"),
        ("messaging.operation.type", "process"),
        ("messaging.destination.name", "orders.eu"),
        ("messaging.destination.template", "orders.*"),
        ("messaging.consumer.group.name", "billing"),
        ("server.address", "127.0.0.1"),
    ] {
        assert_eq!(attr_str(process, key).as_deref(), Some(want), "process span attribute {key}");
    }
    assert_eq!(attr_i64(process, "server.port"), Some(server_port));
    assert_eq!(attr_i64(process, "messaging.message.body.size"), Some(9)); // {"id":42}
    let client_id = attr_str(process, "messaging.client.id").expect("messaging.client.id");
    assert!(client_id.parse::<u64>().is_ok(), "client id is the server-assigned id: {client_id}");
    assert!(attr(process, "messaging.nats.reply_to").is_none(), "no reply subject on a publish");
    assert!(attr(process, "error.type").is_none());
    // Deprecated names only with OTEL_SEMCONV_STABILITY_OPT_IN=messaging/dup.
    assert!(attr(process, "messaging.operation").is_none());

    for (key, want) in [
        ("messaging.system", "nats"),
        ("messaging.operation.name", "send"),
        ("messaging.operation.type", "send"),
        ("messaging.destination.name", "orders.eu"),
        ("server.address", "127.0.0.1"),
    ] {
        assert_eq!(attr_str(send, key).as_deref(), Some(want), "send span attribute {key}");
    }
    assert_eq!(attr_i64(send, "messaging.message.body.size"), Some(9));

    // The handler's own event nests under the process span, and so does its own
    // `tracing` span, with the event inside that span on it.
    assert!(
        process.events.events.iter().any(|e| e.name == "billing the order"),
        "handler events are recorded on the process span: {:?}",
        process.events.events
    );
    let charge = one(&spans, "charge card");
    assert_eq!(charge.parent_span_id, process.span_context.span_id(), "the handler's span is a child");
    assert_eq!(charge.span_context.trace_id(), process.span_context.trace_id());
    assert!(charge.events.events.iter().any(|e| e.name == "charged"));
    assert!(!process.events.events.iter().any(|e| e.name == "charged"), "each event on one span");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn link_mode_starts_a_new_trace_linked_to_the_publisher() {
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(on_audit)).await;
    Publisher::new(h.client.clone()).publish("audit.events", "x").await.unwrap();

    let spans = h.recorder.wait_for(|s| count(s, "process audit.events") == 1).await;
    let send = one(&spans, "send audit.events");
    let process = one(&spans, "process audit.events");
    assert_ne!(process.span_context.trace_id(), send.span_context.trace_id(), "a new trace");
    assert_eq!(process.parent_span_id, SpanId::INVALID, "a root span");
    assert_eq!(process.links.links.len(), 1);
    assert_eq!(process.links.links[0].span_context.span_id(), send.span_context.span_id());
    assert_eq!(process.links.links[0].span_context.trace_id(), send.span_context.trace_id());
    // No wildcard: no template.
    assert!(attr(process, "messaging.destination.template").is_none());
    running.stop().await.unwrap();
}

#[tokio::test]
async fn missing_or_invalid_traceparent_gives_a_root_span() {
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(on_order)).await;

    // Raw publishes, outside any span: no headers, then garbage headers.
    h.client.publish("orders.none", "{\"id\":1}".into()).await.unwrap();
    for bad in ["garbage", "00-00000000000000000000000000000000-0000000000000000-01", "00-abc-def-01"] {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("traceparent", bad);
        headers.insert("tracestate", "=;=;===");
        headers.insert("baggage", "%%%,,,=");
        h.client.publish_with_headers("orders.bad", headers, "{\"id\":2}".into()).await.unwrap();
    }

    let spans = h.recorder.wait_for(|s| count(s, "process orders.*") == 4).await;
    let mut traces = std::collections::HashSet::new();
    for process in named(&spans, "process orders.*") {
        assert_eq!(process.parent_span_id, SpanId::INVALID, "root span");
        assert_ne!(process.span_context.trace_id(), TraceId::INVALID);
        assert!(process.links.links.is_empty());
        assert_eq!(process.status, Status::Unset, "bad context is not an error");
        traces.insert(process.span_context.trace_id());
    }
    assert_eq!(traces.len(), 4, "each message starts its own trace");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn envelope_carries_trace_context_in_the_payload() {
    let h = start().await;
    let publisher = Publisher::new(h.client.clone());
    let running = spawn(NatsService::new(h.client.clone()).state(publisher.clone()).handler(on_legacy)).await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let body = serde_json::json!({
        "traceparent": format!("00-{trace_id}-{parent_id}-01"),
        "tracestate": "vendor=value",
        "data": {"n": 7},
    });
    // Published raw, without headers, as an old publisher would.
    h.client.publish("legacy.events", serde_json::to_vec(&body).unwrap().into()).await.unwrap();

    let spans = h.recorder.wait_for(|s| count(s, "send legacy.processed") == 1).await;
    let process = one(&spans, "process legacy.events");
    assert_eq!(process.span_context.trace_id().to_string(), trace_id);
    assert_eq!(process.parent_span_id.to_string(), parent_id);
    assert_eq!(process.status, Status::Unset);
    // The outbound publish in the handler continues the same trace.
    let send = one(&spans, "send legacy.processed");
    assert_eq!(send.parent_span_id, process.span_context.span_id());
    assert_eq!(send.span_context.trace_id(), process.span_context.trace_id());
    running.stop().await.unwrap();
}

/// With no tracer provider (no recorder on this thread, none installed), nats-otel
/// records nothing, yet a publish still carries the current context on: a trace
/// crosses a service that does not record.
#[tokio::test]
async fn without_a_provider_the_current_context_is_still_propagated() {
    use futures_util::StreamExt as _;
    use opentelemetry::context::FutureExt as _;
    use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceFlags, TraceState};

    nats_otel_runtime::testing::install_w3c_propagators();
    let server = nats_otel_runtime::testing::NatsServer::start().unwrap();
    let client = server.connect().await.unwrap();
    let mut raw = client.subscribe("ambient.>").await.unwrap();
    client.flush().await.unwrap();
    let ambient =
        SpanContext::new(TraceId::from(0x42), SpanId::from(0x7), TraceFlags::SAMPLED, true, TraceState::NONE);
    let cx = opentelemetry::Context::new().with_remote_span_context(ambient.clone());
    let publisher = Publisher::new(client.clone());
    // The first publish finds out there is no provider; the second takes the short way.
    for subject in ["ambient.first", "ambient.second"] {
        publisher.publish(subject, "x").with_context(cx.clone()).await.unwrap();
        let message = within("the raw subscriber gets the publish", raw.next()).await.unwrap();
        let headers = message.headers.expect("trace headers");
        let traceparent = headers.get("traceparent").expect("traceparent").as_str();
        assert_eq!(traceparent, format!("00-{}-{}-01", ambient.trace_id(), ambient.span_id()), "{subject}");
    }
}

/// Spans go through the global tracer provider, as in production: a service on
/// a multi-thread runtime (its loops and handlers on worker threads) and a
/// publisher on another thread report to the same recorder, in one trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_from_worker_threads_reach_the_global_provider() {
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(on_order)).await;

    let client = h.client.clone();
    tokio::spawn(async move {
        let publisher = Publisher::new(client);
        publisher.publish_json("orders.mt", &serde_json::json!({"id": 7})).await.unwrap();
    })
    .await
    .unwrap();

    let spans = h.recorder.wait_for(|s| count(s, "process orders.*") == 1).await;
    let send = one(&spans, "send orders.mt");
    let process = one(&spans, "process orders.*");
    assert_eq!(process.parent_span_id, send.span_context.span_id());
    assert_eq!(attr_str(process, "messaging.destination.name").as_deref(), Some("orders.mt"));
    running.stop().await.unwrap();
}
