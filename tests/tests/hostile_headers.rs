//! Malformed header blocks from a raw-protocol publisher, against a running
//! service (issue 15, item 11). async-nats 0.51 drops the connection on most of
//! them and its connection task dies on a lone CR inside a value (pinned in
//! `upstream_async_nats.rs`). A service must survive the first kind and end, with
//! an error that names the cause, on the second, never with a false success.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use common::*;
use nats_otel_runtime::prelude::*;
use nats_otel_runtime::testing::RawPublisher;
use nats_otel_runtime::{ClientEvents, ServeErrorKind};

#[nats_subscribe("headers.*")]
async fn echo(body: String) -> String {
    body
}

#[nats_subscribe("other.ping")]
async fn other(body: String) -> String {
    body
}

/// A value with a lone CR: async-nats' connection task panics on it.
const LONE_CR: &[u8] = b"NATS/1.0\r\nX-Bad: a\rb\r\n\r\n";

/// The error names the dead connection task, where to read about it, and the handler.
fn assert_names_the_cause(error: &nats_otel_runtime::ServeError, subject: &str) {
    assert_eq!(error.kind(), ServeErrorKind::ConnectionClosed, "{error}");
    let text = error.to_string();
    for expected in ["connection task has ended", "docs/upstream/async-nats-header-parsing.md", subject] {
        assert!(text.contains(expected), "`{expected}` missing from: {text}");
    }
}

#[tokio::test]
async fn a_lone_cr_in_a_header_value_ends_the_service_with_connection_closed() {
    let h = start().await;
    let client = h.server.connect().await.unwrap();
    let running = spawn(NatsService::new(client.clone()).handler(echo)).await;
    let mut raw = RawPublisher::connect(&h.server).await.unwrap();
    raw.publish("headers.bad", LONE_CR, b"x").await.unwrap();
    raw.flush().await.unwrap();

    let error = within("the service ends", running.join()).await.expect_err("not a success");
    assert_names_the_cause(&error, "headers.*");
    // async-nats still says `Connected`: the error must not rely on it.
    assert_eq!(client.connection_state(), async_nats::connection::State::Connected);
}

#[tokio::test]
async fn run_until_ends_with_connection_closed_for_every_handler_on_the_dead_client() {
    let h = start().await;
    let client = h.server.connect().await.unwrap();
    let service = NatsService::new(client).handler(other).handler(echo);
    let run = tokio::spawn(service.run_until(std::future::pending::<()>()));
    // Once the service answers, its subscriptions are live.
    let reply = within("the service answers", async {
        loop {
            match h.client.request("headers.ready", "ready".into()).await {
                Ok(reply) => return reply,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await;
    assert_eq!(&reply.payload[..], b"ready");
    let mut raw = RawPublisher::connect(&h.server).await.unwrap();
    raw.publish("headers.bad", LONE_CR, b"x").await.unwrap();
    raw.flush().await.unwrap();

    let error = within("run_until ends", run).await.unwrap().expect_err("not a success");
    assert_eq!(error.kind(), ServeErrorKind::ConnectionClosed, "{error}");
    assert!(error.to_string().contains("docs/upstream/async-nats-header-parsing.md"), "{error}");
}

#[jetstream_consumer(stream = "HOSTILE", durable = "hostile", ack = "confirmed")]
async fn stored(_body: Bytes) {}

/// Stored, the same block kills the consumer's connection task at delivery. The
/// deletion-advisory subscription ends with it: that is not a deletion, and the
/// pull stream's end is asked about (`connection::subscription_ended`).
#[tokio::test]
async fn a_consumer_whose_connection_task_dies_reports_connection_closed_not_consumer_deleted() {
    let h = start().await;
    jetstream::new(h.client.clone())
        .create_stream(stream::Config {
            name: "HOSTILE".into(),
            subjects: vec!["hostile.stored.>".into()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
    let client = h.server.connect().await.unwrap();
    let running = spawn(NatsService::new(client).handler(stored)).await;
    let mut raw = RawPublisher::connect(&h.server).await.unwrap();
    raw.publish("hostile.stored.1", LONE_CR, b"x").await.unwrap();
    raw.flush().await.unwrap();

    let error = within("the service ends", running.join()).await.expect_err("not a success");
    assert_names_the_cause(&error, "hostile");
}

/// Blocks on which async-nats drops the connection and reconnects (the message
/// is lost; see `upstream_async_nats.rs`).
const RECONNECTING: &[(&str, &[u8])] = &[
    ("value not UTF-8", b"NATS/1.0\r\nX: \xff\r\n\r\n"),
    ("line without ':'", b"NATS/1.0\r\nno colon\r\n\r\n"),
    ("bad name", b"NATS/1.0\r\nX Y: 1\r\n\r\n"),
    ("bad version line", b"HTTP/1.0\r\nX: 1\r\n\r\n"),
    ("bad status line", b"NATS/1.0 abc\r\n\r\n"),
];

#[tokio::test]
async fn after_blocks_that_drop_the_connection_the_service_reconnects_and_answers() {
    let h = start().await;
    let events = ClientEvents::new();
    let client = events.attach(async_nats::ConnectOptions::new()).connect(h.server.url()).await.unwrap();
    let mut seen = events.subscribe();
    let running = spawn(NatsService::new(client).events(&events).handler(echo)).await;
    let mut raw = RawPublisher::connect(&h.server).await.unwrap();
    for (n, (case, block)) in RECONNECTING.iter().enumerate() {
        raw.publish("headers.bad", block, b"x").await.unwrap();
        raw.flush().await.unwrap();
        // The service's client did lose its connection, and got it back.
        for expected in [async_nats::Event::Disconnected, async_nats::Event::Connected] {
            within(case, async { while seen.recv().await.unwrap() != expected {} }).await;
        }
        // A later request is answered (the server may still have routed the
        // first ones to the old connection: retried on no-responders or timeout).
        let body = format!("after {n}");
        let reply = within(case, async {
            loop {
                let request = h.client.request("headers.after", body.clone().into());
                match tokio::time::timeout(Duration::from_secs(2), request).await {
                    Ok(Ok(reply)) => return reply,
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        })
        .await;
        assert_eq!(&reply.payload[..], body.as_bytes(), "{case}");
        assert!(!running.is_finished(), "{case}: the service goes on");
    }
    running.stop().await.unwrap();
}
