//! Traced set-up: declared streams and managed consumers are created or
//! updated at start in spans that say what happened (checked against the
//! server's own state), a consumer bound by name is looked up, and a filter
//! outside its declared stream stops start before anything is created.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use common::*;
use nats_otel_runtime::ServeErrorKind;
use nats_otel_runtime::jetstream::JetStreamConsumer;
use nats_otel_runtime::prelude::*;
use opentelemetry::trace::{SpanKind, Status};

#[jetstream_consumer(stream = "ORDERS", durable = "billing", filter = "orders.*.placed", max_deliver = 5)]
async fn bill(_body: String) -> Result<(), ServiceError> {
    Ok(())
}

#[jetstream_consumer(stream = "ORDERS", durable = "stray", filter = "payments.>")]
async fn stray(_body: String) -> Result<(), ServiceError> {
    Ok(())
}

fn orders(subjects: &[&str]) -> stream::Config {
    stream::Config {
        name: "ORDERS".into(),
        subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
        storage: stream::StorageType::Memory,
        ..Default::default()
    }
}

fn setups(spans: &[opentelemetry_sdk::trace::SpanData], name: &str) -> Vec<String> {
    named(spans, name).iter().map(|s| attr_str(s, "messaging.nats.jetstream.setup").unwrap()).collect()
}

#[tokio::test]
async fn start_creates_then_keeps_then_updates_what_the_service_declares() {
    let h = start().await;
    let js = jetstream::new(h.client.clone());
    let service =
        |subjects: &[&str]| NatsService::new(h.client.clone()).stream(orders(subjects)).handler(bill);

    spawn(service(&["orders.>"])).await.stop().await.unwrap();
    spawn(service(&["orders.>"])).await.stop().await.unwrap();
    spawn(service(&["orders.>", "refunds.>"])).await.stop().await.unwrap();

    let spans = h.recorder.wait_for(|s| count(s, "jetstream.create_consumer") == 3).await;
    assert_eq!(setups(&spans, "jetstream.create_stream"), ["created", "unchanged", "updated"]);
    assert_eq!(setups(&spans, "jetstream.create_consumer"), ["created", "unchanged", "unchanged"]);
    let created = named(&spans, "jetstream.create_stream")[0];
    assert_eq!(created.span_kind, SpanKind::Client);
    // Each start's set-up is one trace, under `start {service}`.
    let start = named(&spans, "start service")[0];
    assert_eq!(created.parent_span_id, start.span_context.span_id());
    assert_eq!(named(&spans, "jetstream.create_consumer")[0].parent_span_id, start.span_context.span_id());
    assert_eq!(attr_str(created, "messaging.nats.jetstream.stream").as_deref(), Some("ORDERS"));
    assert_eq!(attr_str(created, "messaging.nats.jetstream.stream.storage").as_deref(), Some("memory"));
    let consumer = named(&spans, "jetstream.create_consumer")[0];
    assert_eq!(attr_str(consumer, "messaging.nats.jetstream.consumer").as_deref(), Some("billing"));
    assert_eq!(
        attr(consumer, "messaging.nats.jetstream.consumer.filter_subjects")
            .map(ToString::to_string)
            .as_deref(),
        Some("[\"orders.*.placed\"]")
    );
    assert_eq!(attr_i64(consumer, "messaging.nats.jetstream.consumer.max_deliver"), Some(5));

    // The server holds what the spans say.
    let info = js.get_stream("ORDERS").await.unwrap().cached_info().clone();
    assert_eq!(info.config.subjects, ["orders.>", "refunds.>"]);
}

#[tokio::test]
async fn a_consumer_changed_behind_the_service_is_updated_back() {
    let h = start().await;
    let js = jetstream::new(h.client.clone());
    let stream = js.create_stream(orders(&["orders.>"])).await.unwrap();
    stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("billing".into()),
            filter_subject: "orders.*.placed".into(),
            max_deliver: 9,
            ..Default::default()
        })
        .await
        .unwrap();
    spawn(NatsService::new(h.client.clone()).handler(bill)).await.stop().await.unwrap();
    let spans = h.recorder.wait_for(|s| count(s, "jetstream.create_consumer") == 1).await;
    assert_eq!(setups(&spans, "jetstream.create_consumer"), ["updated"]);
    let info = stream.consumer_info("billing").await.unwrap();
    assert_eq!(info.config.max_deliver, 5, "the server holds the declared configuration again");
}

#[tokio::test]
async fn a_filter_outside_its_declared_stream_stops_start_before_anything_is_created() {
    let h = start().await;
    let error = NatsService::new(h.client.clone()).stream(orders(&["orders.>"])).handler(stray).start().await;
    let error = error.expect_err("start fails");
    assert_eq!(error.kind(), ServeErrorKind::Stream);
    let text = error.to_string();
    assert!(text.contains("`payments.>`") && text.contains("orders.>"), "{text}");
    let js = jetstream::new(h.client.clone());
    assert!(js.get_stream("ORDERS").await.is_err(), "nothing was created");
}

#[tokio::test]
async fn a_stream_the_server_refuses_fails_start_in_a_failed_span() {
    let h = start().await;
    let js = jetstream::new(h.client.clone());
    js.create_stream(stream::Config {
        name: "OTHER".into(),
        subjects: vec!["orders.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    // Overlapping subjects: the server refuses the second stream.
    let error = NatsService::new(h.client.clone()).stream(orders(&["orders.>"])).handler(bill).start().await;
    let error = error.expect_err("start fails");
    assert_eq!(error.kind(), ServeErrorKind::Stream);
    assert!(error.to_string().contains("`ORDERS`"), "{error}");
    let spans = h.recorder.wait_for(|s| count(s, "jetstream.create_stream") == 1).await;
    let span = one(&spans, "jetstream.create_stream");
    assert!(matches!(span.status, Status::Error { .. }), "{:?}", span.status);
    assert_eq!(attr_str(span, "error.type").as_deref(), Some("stream"));
}

#[tokio::test]
async fn a_consumer_bound_by_name_is_looked_up_not_managed() {
    let h = start().await;
    let js = jetstream::new(h.client.clone());
    let stream = js.create_stream(orders(&["orders.>"])).await.unwrap();
    stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("ops-managed".into()),
            ack_wait: Duration::from_secs(42),
            ..Default::default()
        })
        .await
        .unwrap();
    let bound = JetStreamConsumer::new("ORDERS", "ops-managed").create(false);
    let missing = JetStreamConsumer::new("ORDERS", "nobody-made-me").create(false);
    spawn(NatsService::new(h.client.clone()).consume(bound, |_: String| async {}))
        .await
        .stop()
        .await
        .unwrap();
    let error = NatsService::new(h.client.clone()).consume(missing, |_: String| async {}).start().await;
    assert_eq!(error.expect_err("start fails").kind(), ServeErrorKind::ConsumerNotFound);

    let spans = h.recorder.wait_for(|s| count(s, "jetstream.get_consumer") == 2).await;
    let found = named(&spans, "jetstream.get_consumer");
    assert_eq!(attr_str(found[0], "messaging.nats.jetstream.setup").as_deref(), Some("bound"));
    assert_eq!(attr_i64(found[0], "messaging.nats.jetstream.consumer.ack_wait_ms"), Some(42_000));
    assert!(matches!(found[1].status, Status::Error { .. }));
    assert_eq!(count(&spans, "jetstream.create_consumer"), 0, "the service changed nothing");
    assert_eq!(stream.consumer_info("ops-managed").await.unwrap().config.ack_wait, Duration::from_secs(42));
}

/// A stream declared as a type: the consumer naming it creates it at start.
#[derive(NatsStream)]
#[nats_stream(name = "INVOICES", subjects = ["invoices.>"], storage = "memory", max_age = "1h", duplicate_window = "30s")]
struct Invoices;

#[jetstream_consumer(stream = Invoices, durable = "mailer", filter = "invoices.*.issued")]
async fn mail(
    State(seen): State<std::sync::Arc<std::sync::Mutex<Vec<String>>>>,
    subject: Subject,
) -> Result<(), ServiceError> {
    seen.lock().unwrap().push(subject.to_string());
    Ok(())
}

#[tokio::test]
async fn a_stream_declared_as_a_type_is_created_at_start_with_its_configuration() {
    let h = start().await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let running = spawn(NatsService::with_state(h.client.clone(), seen.clone()).handler(mail)).await;
    let js = jetstream::new(h.client.clone());
    let info = js.get_stream("INVOICES").await.unwrap().cached_info().clone();
    assert_eq!(info.config.subjects, ["invoices.>"]);
    assert_eq!(info.config.storage, stream::StorageType::Memory);
    assert_eq!(info.config.max_age, Duration::from_secs(3600));
    assert_eq!(info.config.duplicate_window, Duration::from_secs(30));
    js.publish("invoices.eu.issued", "1".into()).await.unwrap().await.unwrap();
    within("the message", async {
        while seen.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    running.stop().await.unwrap();
    let spans = h.recorder.wait_for(|s| count(s, "jetstream.create_stream") == 1).await;
    assert_eq!(setups(&spans, "jetstream.create_stream"), ["created"]);
}
