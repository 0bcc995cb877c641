//! Shared helpers for the integration tests: a server, a client, a recorder, and
//! span-attribute accessors.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;

use nats_otel_runtime::testing::{NatsServer, SpanRecorder};
use nats_otel_runtime::{Service, ServiceHandle};
use opentelemetry::Value;
use opentelemetry_sdk::trace::SpanData;

pub struct Harness {
    pub server: NatsServer,
    pub client: async_nats::Client,
    pub recorder: SpanRecorder,
}

pub async fn start() -> Harness {
    let recorder = SpanRecorder::install();
    let server = NatsServer::start().expect("nats-server starts");
    let client = server.connect().await.expect("client connects");
    Harness { server, client, recorder }
}

/// Starts `service` in the background; returns once its subscriptions are live.
pub async fn spawn<S: Send + Sync + 'static>(service: Service<S>) -> ServiceHandle {
    service.start().await.expect("service subscribes").spawn()
}

pub fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| &kv.value)
}

pub fn attr_str(span: &SpanData, key: &str) -> Option<String> {
    attr(span, key).map(|v| v.as_str().into_owned())
}

pub fn attr_i64(span: &SpanData, key: &str) -> Option<i64> {
    match attr(span, key)? {
        Value::I64(v) => Some(*v),
        other => panic!("attribute {key} is not an i64: {other:?}"),
    }
}

pub fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

pub fn one<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found = named(spans, name);
    assert_eq!(found.len(), 1, "expected one `{name}` span, got {}: {:?}", found.len(), names(spans));
    found[0]
}

pub fn names(spans: &[SpanData]) -> Vec<String> {
    spans.iter().map(|s| s.name.to_string()).collect()
}

pub fn count(spans: &[SpanData], name: &str) -> usize {
    spans.iter().filter(|s| s.name == name).count()
}

pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(20), future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}
