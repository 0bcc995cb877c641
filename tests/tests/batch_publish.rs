//! Batch publishing: a `create` span per message whose context each message
//! carries, one `send` span linking them, failures settled per message, and on
//! JetStream every ack awaited (the stream's own count is the proof).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use common::*;
use futures_util::StreamExt as _;
use nats_otel_runtime::publisher::{Outgoing, PublishRetry};
use nats_otel_runtime::testing::NatsServer;
use nats_otel_runtime::{ClientEvents, PublishErrorKind, Publisher, StreamPublishErrorKind};
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;
use tracing::Instrument as _;

/// The span id a message's `traceparent` names.
fn parent_span_id(message: &async_nats::Message) -> String {
    let traceparent = message.headers.as_ref().and_then(|h| h.get("traceparent")).expect("traceparent");
    traceparent.as_str().split('-').nth(2).expect("a span id").to_owned()
}

fn event_attr(span: &SpanData, event: &str, key: &str) -> Vec<String> {
    span.events
        .iter()
        .filter(|e| e.name == event)
        .filter_map(|e| e.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string()))
        .collect()
}

#[tokio::test]
async fn a_core_batch_traces_each_message_and_fails_only_the_bad_one() {
    let h = start().await;
    let mut sub = h.client.subscribe("orders.>").await.unwrap();
    let publisher = Publisher::new(h.client.clone());

    let batch = vec![
        Outgoing::new("orders.1", "one"),
        Outgoing::new("orders.2", "two"),
        Outgoing::new("orders. bad", "a subject with a space"),
        Outgoing::json("orders.4", &serde_json::json!({"id": 4})).unwrap(),
    ];
    let results = publisher.publish_batch(batch).instrument(tracing::info_span!("checkout")).await;
    assert!(results[0].is_ok() && results[1].is_ok() && results[3].is_ok(), "{results:?}");
    assert_eq!(results[2].as_ref().unwrap_err().kind(), PublishErrorKind::InvalidSubject);

    let mut received = Vec::new();
    for _ in 0..3 {
        received.push(within("a message", sub.next()).await.unwrap());
    }
    let subjects: Vec<&str> = received.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(subjects, ["orders.1", "orders.2", "orders.4"], "the bad one alone is left out");

    let spans = h.recorder.wait_for(|s| count(s, "send") == 1).await;
    let send = one(&spans, "send");
    assert_eq!(send.span_kind, SpanKind::Client, "a send with create spans is CLIENT (semconv)");
    assert_eq!(attr_i64(send, "messaging.batch.message_count"), Some(4));
    assert_eq!(attr_i64(send, "batch.success_count"), Some(3));
    assert_eq!(attr_i64(send, "batch.failure_count"), Some(1));
    assert!(attr(send, "messaging.destination.name").is_none(), "the messages go to different subjects");
    assert!(matches!(&send.status, Status::Error { description } if description.contains("1 of 4")));
    assert_eq!(attr_str(send, "error.type").as_deref(), Some("invalid_subject"));
    assert_eq!(event_attr(send, "Batch item failed", "messaging.nats.batch.index"), ["2"]);
    assert_eq!(event_attr(send, "Batch item failed", "messaging.destination.name"), ["orders. bad"]);

    // One create span per message, each a PRODUCER child of the caller's span,
    // each linked from the send span, each the parent its message carries.
    let checkout = one(&spans, "checkout");
    let creates: Vec<&SpanData> = spans.iter().filter(|s| s.name.starts_with("create ")).collect();
    assert_eq!(creates.len(), 4, "{:?}", names(&spans));
    for create in &creates {
        assert_eq!(create.span_kind, SpanKind::Producer);
        assert_eq!(create.parent_span_id, checkout.span_context.span_id());
        assert_eq!(attr_str(create, "messaging.operation.type").as_deref(), Some("create"));
        assert!(
            send.links.iter().any(|l| l.span_context.span_id() == create.span_context.span_id()),
            "the send span links to {}",
            create.name
        );
    }
    assert_eq!(send.parent_span_id, checkout.span_context.span_id());
    for message in &received {
        let create = one(&spans, &format!("create {}", message.subject));
        assert_eq!(parent_span_id(message), create.span_context.span_id().to_string());
    }
}

#[tokio::test]
async fn a_batch_to_one_subject_is_named_after_it_and_an_empty_batch_sends_nothing() {
    let h = start().await;
    let publisher = Publisher::new(h.client.clone());
    assert!(publisher.publish_batch(Vec::new()).await.is_empty());
    let results = publisher.publish_batch((0..100).map(|i| Outgoing::new("ticks", format!("{i}")))).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 100);
    let spans = h.recorder.wait_for(|s| count(s, "send ticks") == 1).await;
    let send = one(&spans, "send ticks");
    assert_eq!(attr_str(send, "messaging.destination.name").as_deref(), Some("ticks"));
    assert_eq!(attr_i64(send, "messaging.batch.message_count"), Some(100));
    assert_eq!(send.status, Status::Unset);
    assert_eq!(count(&spans, "create ticks"), 100);
    assert_eq!(count(&spans, "send"), 0, "the empty batch made no span");
}

async fn orders_stream(client: &async_nats::Client) -> jetstream::stream::Stream {
    jetstream::new(client.clone())
        .create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            ..Default::default()
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_jetstream_batch_stores_the_good_messages_once_and_says_why_the_others_failed() {
    let h = start().await;
    let mut stream = orders_stream(&h.client).await;
    let publisher = Publisher::new(h.client.clone()).retry(PublishRetry::new(1, Duration::from_millis(10)));

    let batch = || {
        vec![
            Outgoing::new("orders.1", "one").message_id("o-1"),
            Outgoing::new("orders.2", "two").message_id("o-2"),
            Outgoing::new("orders.3", "three").message_id("o-3").expected_stream("ELSEWHERE"),
            Outgoing::new("orders.4", "four").derived_message_id(),
            Outgoing::new("nowhere.5", "no stream captures it"),
        ]
    };
    let results = publisher.publish_batch_to_stream(batch()).await;
    let stored: Vec<u64> = results.iter().filter_map(|r| r.as_ref().ok().map(|ack| ack.sequence)).collect();
    assert_eq!(stored, [1, 2, 3], "{results:?}");
    assert_eq!(results[2].as_ref().unwrap_err().kind(), StreamPublishErrorKind::WrongExpectedStream);
    assert!(results[4].is_err(), "no stream captures nowhere.5");
    assert_eq!(stream.info().await.unwrap().state.messages, 3, "the server stored exactly the good ones");

    // The same batch again: the ids make the stream keep one copy of each.
    let again = publisher.publish_batch_to_stream(batch()).await;
    let duplicates: Vec<bool> =
        again.iter().filter_map(|r| r.as_ref().ok().map(|ack| ack.duplicate)).collect();
    assert_eq!(duplicates, [true, true, true]);
    assert_eq!(stream.info().await.unwrap().state.messages, 3);

    let spans = h.recorder.wait_for(|s| count(s, "send") == 2).await;
    let send = named(&spans, "send")[0];
    assert_eq!(attr_i64(send, "batch.success_count"), Some(3));
    assert_eq!(attr_i64(send, "batch.failure_count"), Some(2));
    assert_eq!(event_attr(send, "Batch item failed", "messaging.nats.batch.index"), ["2", "4"]);
    assert_eq!(event_attr(send, "Batch item failed", "messaging.message.id"), ["o-3"]);
    let ids: Vec<String> =
        named(&spans, "create orders.1").iter().filter_map(|s| attr_str(s, "messaging.message.id")).collect();
    assert_eq!(ids, ["o-1", "o-1"]);

    // Each stored message carries its own create span's context.
    let stored = stream.get_raw_message(2).await.unwrap();
    let traceparent = stored.headers.get("traceparent").unwrap().as_str().to_owned();
    let create = named(&spans, "create orders.2")[0];
    assert!(traceparent.contains(&create.span_context.span_id().to_string()), "{traceparent}");
}

/// The server refusing our publishes at first (no stream yet): the batch is
/// retried as a whole round, and every message is stored once.
#[tokio::test]
async fn a_jetstream_batch_retries_what_the_server_refused_until_the_stream_exists() {
    let h = start().await;
    let publisher = Publisher::new(h.client.clone())
        .retry(PublishRetry::new(20, Duration::from_millis(100)).max_backoff(Duration::from_millis(200)));
    let client = h.client.clone();
    let creator = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        orders_stream(&client).await
    });
    let results = publisher
        .publish_batch_to_stream(
            (1..=50).map(|i| Outgoing::new(format!("orders.{i}"), "x").message_id(format!("{i}"))),
        )
        .await;
    let mut stream = creator.await.unwrap();
    assert!(results.iter().all(Result::is_ok), "{:?}", results.iter().find(|r| r.is_err()));
    assert_eq!(stream.info().await.unwrap().state.messages, 50);

    let spans = h.recorder.wait_for(|s| count(s, "send") == 1).await;
    let send = one(&spans, "send");
    assert!(attr_i64(send, "messaging.nats.jetstream.publish_attempts").unwrap() > 1);
    assert!(send.events.iter().any(|e| e.name == "publish retry"));
    assert_eq!(send.status, Status::Unset, "a batch that succeeded after retries is not failed");
}

const DENY_SECRETS: &str = r#"
authorization {
  users = [
    { user: "app", password: "pw", permissions: { publish: { allow: [">"], deny: ["secret.>"] }, subscribe: { allow: [">"] } } }
  ]
}
"#;

/// A message the server denies fails at once (not after the ack timeout) and
/// alone: the others of the batch are stored.
#[tokio::test]
async fn a_denied_message_of_a_jetstream_batch_fails_at_once_and_alone() {
    let recorder = nats_otel_runtime::testing::SpanRecorder::install();
    let server = NatsServer::with_config(DENY_SECRETS).unwrap();
    let events = ClientEvents::new();
    let client = events
        .attach(async_nats::ConnectOptions::with_user_and_password("app".into(), "pw".into()))
        .connect(server.url())
        .await
        .unwrap();
    let mut stream = jetstream::new(client.clone())
        .create_stream(stream::Config {
            name: "MIXED".into(),
            subjects: vec!["secret.>".into(), "open.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let publisher = Publisher::new(client).events(&events);
    let results = within(
        "the denial",
        publisher.publish_batch_to_stream([
            Outgoing::new("open.1", "a"),
            Outgoing::new("secret.2", "b"),
            Outgoing::new("open.3", "c"),
        ]),
    )
    .await;
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    let denied = results[1].as_ref().unwrap_err();
    assert_eq!(denied.kind(), StreamPublishErrorKind::PermissionDenied);
    assert!(denied.to_string().contains("`secret.2`"), "{denied}");
    assert_eq!(stream.info().await.unwrap().state.messages, 2);
    let spans = recorder.wait_for(|s| count(s, "send") == 1).await;
    assert_eq!(attr_str(one(&spans, "send"), "error.type").as_deref(), Some("permission_denied"));
}

/// Metrics count each message of a batch (failed ones with their `error.type`)
/// and time the batch once.
#[tokio::test]
async fn a_batch_counts_every_message_and_times_one_operation() {
    let (exporter, provider) = install_metrics();
    let h = start().await;
    let publisher = Publisher::new(h.client.clone());
    let batch = [Outgoing::new("a", "12"), Outgoing::new("b c", "x"), Outgoing::new("d", "345")];
    publisher.publish_batch(batch).await;
    provider.force_flush().unwrap();
    let points = points(&exporter);
    let send = |p: &Point| p.attr("messaging.operation.name") == Some("send");
    assert_eq!(total(&points, "messaging.client.sent.messages", send), 3.0);
    let failed = |p: &Point| send(p) && p.attr("error.type") == Some("invalid_subject");
    assert_eq!(total(&points, "messaging.client.sent.messages", failed), 1.0);
    assert_eq!(
        total(&points, "messaging.nats.sent.bytes", |p| send(p) && p.attr("error.type").is_none()),
        5.0
    );
    assert_eq!(total(&points, "messaging.client.operation.duration", send), 1.0, "one operation");
}

/// A message above the server's `max_payload` fails alone: the client refuses
/// it before sending, and the rest of the batch goes out.
#[tokio::test]
async fn an_oversized_message_fails_alone() {
    let h = start().await;
    let mut sub = h.client.subscribe("big.>").await.unwrap();
    let publisher = Publisher::new(h.client.clone());
    let too_big = vec![0u8; h.client.server_info().max_payload + 1];
    let results = publisher
        .publish_batch([
            Outgoing::new("big.1", "a"),
            Outgoing::new("big.2", too_big),
            Outgoing::new("big.3", "c"),
        ])
        .await;
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert_eq!(results[1].as_ref().unwrap_err().kind(), PublishErrorKind::Send);
    let subjects: Vec<String> = vec![
        within("a message", sub.next()).await.unwrap().subject.to_string(),
        within("a message", sub.next()).await.unwrap().subject.to_string(),
    ];
    assert_eq!(subjects, ["big.1", "big.3"]);
    let spans = h.recorder.wait_for(|s| count(s, "send") == 1).await;
    assert_eq!(attr_i64(one(&spans, "send"), "batch.failure_count"), Some(1));
}

/// The connection lost under a JetStream batch: the server is down when the
/// batch goes out and back half a second later. Unacknowledged messages are
/// sent again, and their ids make the stream store each one once.
#[tokio::test]
async fn a_jetstream_batch_across_a_lost_connection_stores_each_message_once() {
    let mut h = start().await;
    let mut stream = jetstream::new(h.client.clone())
        .create_stream(stream::Config {
            name: "DURABLE".into(),
            subjects: vec!["durable.>".into()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .unwrap();
    let publisher = Publisher::new(h.client.clone())
        .retry(PublishRetry::new(30, Duration::from_millis(200)).max_backoff(Duration::from_secs(1)));
    h.server.kill();
    let batch = publisher.publish_batch_to_stream(
        (1..=50).map(|i| Outgoing::new(format!("durable.{i}"), "x").message_id(format!("m-{i}"))),
    );
    let restart = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        h.server.restart().unwrap();
    };
    let (results, ()) =
        within_secs(60, "the batch across the restart", async { tokio::join!(batch, restart) }).await;
    assert!(results.iter().all(Result::is_ok), "{:?}", results.iter().find(|r| r.is_err()));
    assert_eq!(stream.info().await.unwrap().state.messages, 50, "each message stored once");
    let spans = h.recorder.wait_for(|s| count(s, "send") == 1).await;
    let send = one(&spans, "send");
    assert!(
        attr_i64(send, "messaging.nats.jetstream.publish_attempts").unwrap() > 1,
        "the lost acks were retried"
    );
    assert_eq!(attr_i64(send, "batch.success_count"), Some(50));
}
