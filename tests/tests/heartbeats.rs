//! Handlers slower than `ack_wait`: every message the service holds is kept
//! alive, whether its handler runs or it waits for one, at the pace of the
//! consumer's current `ack_wait`. Checked by counting deliveries and by the
//! consumer's own redelivery count on the server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use common::*;
use nats_otel_runtime::JetStreamConsumer;
use nats_otel_runtime::prelude::*;

#[derive(Clone, Default)]
struct Runs(Arc<Mutex<HashMap<Vec<u8>, usize>>>);

impl Runs {
    fn total(&self) -> usize {
        self.0.lock().unwrap().values().sum()
    }
    fn distinct(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// Takes longer than the consumer's `ack_wait`.
async fn slow(body: Bytes, State((runs, pause)): State<(Runs, Duration)>) {
    *runs.0.lock().unwrap().entry(body.to_vec()).or_default() += 1;
    tokio::time::sleep(pause).await;
}

async fn work_stream(client: &async_nats::Client) -> stream::Stream {
    jetstream::new(client.clone())
        .create_stream(stream::Config {
            name: "WORK".into(),
            subjects: vec!["work.>".into()],
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn publish(client: &async_nats::Client, count: usize) {
    let js = jetstream::new(client.clone());
    for i in 0..count {
        js.publish("work.item", i.to_string().into()).await.unwrap().await.unwrap();
    }
}

#[tokio::test]
async fn messages_waiting_for_a_busy_handler_are_kept_alive_and_processed_once() {
    let h = start().await;
    let stream = work_stream(&h.client).await;
    // Pulled (default batch) far more than run at once: most wait for a handler
    // for several ack_waits.
    publish(&h.client, 24).await;
    let runs = Runs::default();
    let consumer = JetStreamConsumer::new("WORK", "slow").ack_wait(Duration::from_secs(1)).concurrency(4);
    let running = spawn(
        NatsService::new(h.client.clone())
            .state((runs.clone(), Duration::from_millis(1500)))
            .consume(consumer, slow),
    )
    .await;
    let info = settled(&stream, "slow", 60).await;
    assert_eq!(runs.distinct(), 24);
    assert_eq!(runs.total(), 24, "each message handled once");
    assert_eq!(info.num_redelivered, 0, "the server redelivered nothing");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_lowered_ack_wait_is_followed_by_instances_already_running() {
    let h = start().await;
    let stream = work_stream(&h.client).await;
    let runs = Runs::default();
    let consumer = JetStreamConsumer::new("WORK", "rolling").ack_wait(Duration::from_secs(10)).concurrency(4);
    let running = spawn(
        NatsService::new(h.client.clone())
            .state((runs.clone(), Duration::from_secs(4)))
            .consume(consumer, slow),
    )
    .await;
    // Another deployment updates the consumer with a shorter ack_wait.
    stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("rolling".into()),
            ack_wait: Duration::from_millis(1500),
            ..Default::default()
        })
        .await
        .unwrap();
    // Time for the running instance to notice (it reads the consumer every second).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    publish(&h.client, 4).await;
    let info = settled(&stream, "rolling", 60).await;
    assert_eq!(runs.total(), 4, "each message handled once");
    assert_eq!(info.num_redelivered, 0, "the server redelivered nothing");
    running.stop().await.unwrap();
}
