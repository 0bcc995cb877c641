//! Header values and payload bytes reach spans only when an endpoint opts in:
//! an allow-list of headers, and a capped prefix of the body.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use nats_otel_runtime::prelude::*;
use nats_otel_runtime::{JetStreamConsumer, Subscription};
use opentelemetry::{Array, Value};
use opentelemetry_sdk::trace::SpanData;

#[nats_subscribe("capture.none")]
async fn plain(_body: Bytes) {}

#[nats_subscribe("capture.some", capture_headers = ["X-Tenant"], capture_body = 8)]
async fn captured(_body: Bytes) {}

fn captured_keys(span: &SpanData) -> Vec<String> {
    span.attributes
        .iter()
        .map(|kv| kv.key.as_str().to_owned())
        .filter(|k| k.starts_with("messaging.nats.message."))
        .collect()
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(*name, *value);
    }
    headers
}

#[tokio::test]
async fn nothing_is_captured_by_default() {
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(plain)).await;
    let sent = headers(&[("x-tenant", "acme"), ("authorization", "Bearer s3cret")]);
    h.client.publish_with_headers("capture.none", sent, "card=4111111111111111".into()).await.unwrap();
    let spans = h.recorder.wait_for(|s| count(s, "process capture.none") == 1).await;
    let span = one(&spans, "process capture.none");
    assert_eq!(captured_keys(span), Vec::<String>::new());
    for kv in &span.attributes {
        let value = kv.value.as_str();
        assert!(!value.contains("acme") && !value.contains("s3cret") && !value.contains("4111"), "{kv:?}");
    }
    running.stop().await.unwrap();
}

#[tokio::test]
async fn allow_listed_headers_are_captured_case_insensitively_and_bodies_at_the_cap() {
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(captured)).await;
    let sent = headers(&[("x-TENANT", "acme"), ("authorization", "Bearer s3cret")]);
    h.client.publish_with_headers("capture.some", sent, "hello, world".into()).await.unwrap();
    // The cap (8 bytes) falls inside the second `é` (bytes 5..7 and 7..9).
    h.client.publish("capture.some", "abcdeééé".into()).await.unwrap();
    h.client.publish("capture.some", vec![0xff, 0xfe, 0x00, 0x01].into()).await.unwrap();
    let spans = h.recorder.wait_for(|s| count(s, "process capture.some") == 3).await;
    let process = named(&spans, "process capture.some");
    let body_of = |span: &SpanData| attr_str(span, "messaging.nats.message.body").unwrap();
    let find = |body: &str| *process.iter().find(|s| body_of(s) == body).unwrap_or_else(|| panic!("{body}"));

    let text = find("hello, w");
    assert_eq!(
        attr(text, "messaging.nats.message.header.x-tenant"),
        Some(&Value::Array(Array::String(vec!["acme".into()])))
    );
    assert_eq!(attr(text, "messaging.nats.message.body.truncated"), Some(&Value::Bool(true)));
    assert_eq!(attr_str(text, "messaging.nats.message.body.encoding").as_deref(), Some("utf-8"));
    assert_eq!(attr_i64(text, "messaging.message.body.size"), Some(12));
    assert!(
        captured_keys(text).iter().all(|k| !k.contains("authorization")),
        "only allow-listed headers: {:?}",
        captured_keys(text)
    );

    let utf8 = find("abcdeé");
    assert_eq!(attr(utf8, "messaging.nats.message.body.truncated"), Some(&Value::Bool(true)));
    assert_eq!(attr(utf8, "messaging.nats.message.header.x-tenant"), None, "no header, no attribute");

    let binary = find("//4AAQ==");
    assert_eq!(attr_str(binary, "messaging.nats.message.body.encoding").as_deref(), Some("base64"));
    assert_eq!(attr(binary, "messaging.nats.message.body.truncated"), Some(&Value::Bool(false)));
    running.stop().await.unwrap();
}

async fn ack(_body: Bytes) {}

#[tokio::test]
async fn jetstream_consumers_capture_with_the_builder() {
    let h = start().await;
    let js = async_nats::jetstream::new(h.client.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "CAPTURE".into(),
        subjects: vec!["capture.js.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let consumer = JetStreamConsumer::new("CAPTURE", "capture")
        .filter("capture.js.>")
        .capture_headers(["nats-msg-id"])
        .capture_body(4);
    let running = spawn(NatsService::new(h.client.clone()).consume(consumer, ack)).await;
    let publisher = Publisher::new(h.client.clone());
    let options = nats_otel_runtime::publisher::StreamPublish::new().message_id("order-1");
    publisher.publish_to_stream_with("capture.js.eu", options, "payload").await.unwrap();
    let spans = h.recorder.wait_for(|s| count(s, "process capture.js.>") == 1).await;
    let span = one(&spans, "process capture.js.>");
    assert_eq!(
        attr(span, "messaging.nats.message.header.nats-msg-id"),
        Some(&Value::Array(Array::String(vec!["order-1".into()])))
    );
    assert_eq!(attr_str(span, "messaging.nats.message.body").as_deref(), Some("payl"));
    assert!(
        captured_keys(span).iter().all(|k| !k.contains("traceparent")),
        "the trace context header is not on the list: {:?}",
        captured_keys(span)
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn an_invalid_allow_list_is_refused_at_start() {
    let h = start().await;
    let err = NatsService::new(h.client.clone())
        .subscribe_with(Subscription::new("capture.bad").capture_headers(["x tenant"]), ack)
        .start()
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("capture_headers"), "{err:#}");
}
