//! A stored message whose header block makes async-nats drop the connection
//! (see docs/upstream/) must cost only its own deliveries: the valid messages
//! pulled in the same batch are handled, not exhausted with it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use common::*;
use nats_otel_runtime::JetStreamConsumer;
use nats_otel_runtime::jetstream::dead_letter_headers as dlq;
use nats_otel_runtime::prelude::*;
use nats_otel_runtime::testing::{Ledger, RawPublisher};

async fn record(body: Bytes, State(seen): State<Seen>) {
    if let Ok(id) = std::str::from_utf8(&body).unwrap_or("").parse::<u64>() {
        seen.add(id).await;
    }
}

#[tokio::test]
async fn a_poison_header_block_in_a_stream_exhausts_only_itself() {
    let h = start().await;
    let js = jetstream::new(h.client.clone());
    let work = js
        .create_stream(stream::Config {
            name: "WORK".into(),
            subjects: vec!["work.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    for id in 0..10u64 {
        js.publish("work.item", id.to_string().into()).await.unwrap().await.unwrap();
    }
    // A line without ':': nats-server stores and forwards it byte for byte;
    // async-nats 0.51 drops the connection when it reads it.
    let mut raw = RawPublisher::connect(&h.server).await.unwrap();
    raw.publish("work.item", b"NATS/1.0\r\nno colon here\r\n\r\n", b"poison").await.unwrap();
    raw.flush().await.unwrap();
    for id in 10..30u64 {
        js.publish("work.item", id.to_string().into()).await.unwrap().await.unwrap();
    }
    let dead = js
        .create_stream(stream::Config {
            name: "DEAD".into(),
            subjects: vec!["dead.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let ledger = Ledger::watch(&h.client, "WORK", "careful").await.unwrap();
    let seen = Seen::default();
    let consumer = JetStreamConsumer::new("WORK", "careful")
        .ack_wait(Duration::from_secs(1))
        .max_deliver(3)
        .dead_letter("dead.work")
        .name("careful");
    let running =
        spawn(NatsService::new(h.client.clone()).state(seen.clone()).consume(consumer, record)).await;

    seen.wait_distinct(30).await;
    let info = settled(&work, "careful", 60).await;
    assert_eq!(info.num_ack_pending, 0);
    within("the poison message exhausted", async {
        while ledger.exhausted().is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(ledger.exhausted().into_iter().collect::<Vec<_>>(), [11], "only the poison message gave out");
    // Its letter carries the bytes no client could read.
    let accounts = within("the poison message dead-lettered", async {
        loop {
            let accounts = ledger.account(Some("DEAD")).await.unwrap();
            if accounts.dead_lettered == [11] {
                return accounts;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    accounts.assert_nothing_lost();
    assert_eq!(accounts.acked.len(), 30, "{accounts}");
    let letter = dead.get_raw_message(1).await.unwrap();
    assert_eq!(&letter.payload[..], b"poison");
    let block = letter.headers.get(dlq::UNREADABLE_HEADERS).unwrap().as_str().to_owned();
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD.decode(block).unwrap(),
        b"NATS/1.0\r\nno colon here\r\n\r\n"
    );
    assert!(!running.is_finished(), "the service goes on");
    running.stop().await.unwrap();
}
