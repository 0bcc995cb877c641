//! Ordered consumers (replay): every message once, in stream order, to one
//! instance; a consumer lost mid-replay is recreated from the last sequence
//! seen, without gaps or duplicates, and the recreation is traced. Nothing is
//! acked, and the instance's consumer is deleted when it stops.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use common::*;
use nats_otel_runtime::ServeErrorKind;
use nats_otel_runtime::jetstream::JetStreamConsumer;
use nats_otel_runtime::prelude::*;

/// The stream sequences the handler saw, in the order it saw them, and the
/// consumer each came from.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(u64, String)>>>);

impl Seen {
    fn sequences(&self) -> Vec<u64> {
        self.0.lock().unwrap().iter().map(|(s, _)| *s).collect()
    }
    fn last_consumer(&self) -> Option<String> {
        self.0.lock().unwrap().last().map(|(_, c)| c.clone())
    }
    async fn reach(&self, n: usize) {
        within("the replay", async {
            while self.0.lock().unwrap().len() < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
}

async fn record(State(seen): State<Seen>, info: JetStreamInfo, body: String) -> Result<(), ServiceError> {
    seen.0.lock().unwrap().push((info.stream_sequence, info.consumer.to_string()));
    if body == "panic" {
        panic!("a handler that panics on one message");
    }
    Ok(())
}

async fn events_stream(client: &async_nats::Client) -> jetstream::stream::Stream {
    jetstream::new(client.clone())
        .create_stream(stream::Config {
            name: "EVENTS".into(),
            subjects: vec!["events.>".into()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn publish(client: &async_nats::Client, range: std::ops::RangeInclusive<u64>) {
    let js = jetstream::new(client.clone());
    for i in range {
        js.publish(format!("events.{}", i % 3), format!("{i}").into()).await.unwrap().await.unwrap();
    }
}

#[tokio::test]
async fn an_ordered_consumer_replays_every_message_once_in_order_and_acks_nothing() {
    let h = start().await;
    let mut stream = events_stream(&h.client).await;
    publish(&h.client, 1..=200).await;
    let seen = Seen::default();
    let replay = JetStreamConsumer::ordered("EVENTS").filter("events.>");
    let running =
        spawn(NatsService::with_state(h.client.clone(), seen.clone()).consume(replay, record)).await;
    seen.reach(200).await;
    assert_eq!(seen.sequences(), (1..=200).collect::<Vec<_>>());

    let spans = h.recorder.wait_for(|s| count(s, "process events.>") == 200).await;
    let process = named(&spans, "process events.>")[0];
    assert!(attr(process, "messaging.consumer.group.name").is_none(), "an ordered consumer has no group");
    assert_eq!(attr_str(process, "messaging.nats.jetstream.stream").as_deref(), Some("EVENTS"));
    let created = one(&spans, "jetstream.create_consumer");
    assert_eq!(attr_str(created, "messaging.nats.jetstream.setup").as_deref(), Some("created"));
    assert_eq!(
        attr(created, "messaging.nats.jetstream.consumer.ordered").map(ToString::to_string).as_deref(),
        Some("true")
    );
    assert_eq!(count(&spans, "ack events.>"), 0, "nothing is settled");

    // The instance's own consumer, gone once it stops.
    assert_eq!(stream.info().await.unwrap().state.consumer_count, 1);
    running.stop().await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.consumer_count, 0, "stop deletes the ephemeral consumer");
}

#[tokio::test]
async fn a_deleted_ordered_consumer_is_recreated_and_resumes_without_gaps_or_duplicates() {
    let h = start().await;
    let stream = events_stream(&h.client).await;
    publish(&h.client, 1..=50).await;
    let seen = Seen::default();
    let replay = JetStreamConsumer::ordered("EVENTS");
    let running =
        spawn(NatsService::with_state(h.client.clone(), seen.clone()).consume(replay, record)).await;
    seen.reach(50).await;

    // Lost mid-replay: deleted behind the service's back.
    let first = seen.last_consumer().unwrap();
    stream.delete_consumer(&first).await.unwrap();
    publish(&h.client, 51..=120).await;
    seen.reach(120).await;
    tokio::time::sleep(Duration::from_millis(200)).await; // nothing more may come
    assert_eq!(seen.sequences(), (1..=120).collect::<Vec<_>>(), "no gap, no duplicate, in order");
    let now = seen.last_consumer().unwrap();
    assert_ne!(now, first, "a new consumer");

    let spans = h.recorder.wait_for(|s| count(s, "jetstream.create_consumer") == 2).await;
    let recreated: Vec<_> = named(&spans, "jetstream.create_consumer")
        .into_iter()
        .filter(|s| attr_str(s, "messaging.nats.jetstream.setup").as_deref() == Some("recreated"))
        .collect();
    assert_eq!(recreated.len(), 1);
    assert_eq!(attr_str(recreated[0], "messaging.nats.jetstream.consumer.previous"), Some(first));
    assert_eq!(attr_str(recreated[0], "messaging.nats.jetstream.consumer").as_deref(), Some(now.as_str()));
    assert_eq!(attr_i64(recreated[0], "messaging.nats.jetstream.consumer.resumed_after_sequence"), Some(50));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_handler_panic_is_recorded_and_the_replay_goes_on_in_order() {
    let h = start().await;
    events_stream(&h.client).await;
    let js = jetstream::new(h.client.clone());
    for body in ["1", "panic", "3"] {
        js.publish("events.x", body.into()).await.unwrap().await.unwrap();
    }
    let seen = Seen::default();
    let replay = JetStreamConsumer::ordered("EVENTS");
    let running =
        spawn(NatsService::with_state(h.client.clone(), seen.clone()).consume(replay, record)).await;
    seen.reach(3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen.sequences(), [1, 2, 3], "the panicking message is not delivered again");
    let spans = h.recorder.wait_for(|s| count(s, "process EVENTS") == 3).await;
    let failed: Vec<_> = named(&spans, "process EVENTS")
        .into_iter()
        .filter(|s| matches!(s.status, opentelemetry::trace::Status::Error { .. }))
        .collect();
    assert_eq!(failed.len(), 1);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn an_ordered_consumer_refuses_options_about_acks() {
    let h = start().await;
    events_stream(&h.client).await;
    let replay = JetStreamConsumer::ordered("EVENTS").max_deliver(3);
    let error = NatsService::with_state(h.client.clone(), Seen::default())
        .consume(replay, record)
        .start()
        .await
        .expect_err("start fails");
    let chain = format!("{error:#}");
    assert!(chain.contains("`max_deliver` does not apply to an ordered consumer"), "{chain}");
    assert_eq!(error.kind(), ServeErrorKind::InvalidOptions, "{chain}");
}

#[jetstream_consumer(stream = "EVENTS", ordered = true, filter = "events.{kind}", deliver = "all")]
async fn replay_kinds(State(seen): State<Seen>, kind: String, info: JetStreamInfo) {
    seen.0.lock().unwrap().push((info.stream_sequence, kind));
}

/// The macro's `ordered = true` serves the same replay, captures included.
#[tokio::test]
async fn the_macro_declares_an_ordered_consumer() {
    let h = start().await;
    events_stream(&h.client).await;
    publish(&h.client, 1..=30).await;
    let seen = Seen::default();
    let running = spawn(NatsService::with_state(h.client.clone(), seen.clone()).handler(replay_kinds)).await;
    seen.reach(30).await;
    assert_eq!(seen.sequences(), (1..=30).collect::<Vec<_>>());
    assert_eq!(seen.0.lock().unwrap()[0].1, "1", "events.1 captured as `kind`");
    let spans = h.recorder.wait_for(|s| count(s, "process events.{kind}") == 30).await;
    assert_eq!(count(&spans, "process events.{kind}"), 30);
    running.stop().await.unwrap();
}

/// The server killed and restarted mid-replay (file storage): the client
/// reconnects, the consumer is recreated from the last sequence seen, and the
/// replay goes on without a gap or a duplicate.
#[tokio::test]
async fn a_server_restart_mid_replay_loses_and_repeats_nothing() {
    let mut h = start().await;
    jetstream::new(h.client.clone())
        .create_stream(stream::Config {
            name: "EVENTS".into(),
            subjects: vec!["events.>".into()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .unwrap();
    publish(&h.client, 1..=40).await;
    let seen = Seen::default();
    let replay = JetStreamConsumer::ordered("EVENTS");
    let running =
        spawn(NatsService::with_state(h.client.clone(), seen.clone()).consume(replay, record)).await;
    seen.reach(40).await;

    h.server.restart().unwrap();
    // Publish once JetStream is back (the publish is retried until it is).
    within_secs(60, "JetStream after the restart", async {
        let js = jetstream::new(h.client.clone());
        loop {
            if let Ok(ack) = js.publish("events.0", "41".into()).await
                && ack.await.is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    publish(&h.client, 42..=60).await;
    within_secs(90, "the replay after the restart", async {
        while seen.0.lock().unwrap().len() < 60 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen.sequences(), (1..=60).collect::<Vec<_>>(), "no gap, no duplicate, in order");
    running.stop().await.unwrap();
}

/// An ordered consumer's name is the instance's own (`ordered_` and a NUID):
/// as a metric attribute it would start new series with every instance and
/// restart. Its metrics carry the stream's destination, and neither a group
/// nor a subscription name; its spans keep the name, to find the consumer.
#[tokio::test]
async fn an_ordered_consumer_s_metrics_carry_no_per_instance_name() {
    let (exporter, provider) = install_metrics();
    let h = start().await;
    events_stream(&h.client).await;
    publish(&h.client, 1..=3).await;
    let seen = Seen::default();
    let replay = JetStreamConsumer::ordered("EVENTS").filter("events.>");
    let running =
        spawn(NatsService::with_state(h.client.clone(), seen.clone()).consume(replay, record)).await;
    seen.reach(3).await;
    running.stop().await.unwrap();
    provider.force_flush().unwrap();

    let points = points(&exporter);
    let consumed = reported(&points, "messaging.client.consumed.messages", |p| {
        p.attr("messaging.destination.template") == Some("events.>")
    });
    assert_eq!(consumed, 3.0);
    let per_instance: Vec<&Point> = points
        .iter()
        .filter(|p| {
            p.attributes.iter().any(|(_, value)| value.starts_with("ordered_"))
                || p.attr("messaging.destination.subscription.name").is_some()
                || p.attr("messaging.consumer.group.name").is_some()
        })
        .collect();
    assert!(per_instance.is_empty(), "per-instance names in metrics: {per_instance:#?}");
    let spans = h.recorder.wait_for(|s| count(s, "process events.>") == 3).await;
    let process = named(&spans, "process events.>")[0];
    let subscription = attr_str(process, "messaging.destination.subscription.name").unwrap_or_default();
    assert!(subscription.starts_with("ordered_"), "spans name the consumer: {subscription}");
}
