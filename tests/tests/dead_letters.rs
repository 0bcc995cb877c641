//! Dead letters at the edges, against real servers: a message is termed only once
//! its letter is stored; letters the stream refuses or cannot hold are retried
//! with a delay or sent smaller, never dropped; deliveries that never returned are
//! dead-lettered from the server's advisory. Each test accounts for every message
//! from the server's own state (`testing::Ledger`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use common::*;
use nats_otel_runtime::jetstream::dead_letter_headers as dlq;
use nats_otel_runtime::prelude::*;
use nats_otel_runtime::publisher::StreamPublish;
use nats_otel_runtime::testing::{Ledger, NatsServer};
use nats_otel_runtime::{Acker, JetStreamConsumer};

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: u64,
}

#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused for good")
    }
}

impl HandlerError for Refused {
    fn retry(&self) -> nats_otel_runtime::Retry {
        nats_otel_runtime::Retry::Never
    }
}

/// Counts its calls and fails for good.
async fn refuse(Json(_order): Json<Order>, State(calls): State<Arc<AtomicUsize>>) -> Result<(), Refused> {
    calls.fetch_add(1, Ordering::SeqCst);
    Err(Refused)
}

async fn create_stream(client: &async_nats::Client, name: &str, subjects: &[&str]) -> stream::Stream {
    create_stream_with(
        client,
        stream::Config {
            name: name.into(),
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
    )
    .await
}

async fn create_stream_with(client: &async_nats::Client, config: stream::Config) -> stream::Stream {
    jetstream::new(client.clone()).create_stream(config).await.unwrap()
}

/// Waits until the ledger shows every message of the consumer given up with its
/// letter stored, and returns the letters' raw messages.
async fn wait_dead_lettered(
    ledger: &Ledger,
    dead: &str,
    expected: usize,
) -> nats_otel_runtime::testing::Accounts {
    within_secs(30, "every message dead-lettered", async {
        loop {
            let accounts = ledger.account(Some(dead)).await.unwrap();
            assert!(accounts.lost.is_empty(), "{accounts}");
            if accounts.dead_lettered.len() == expected && accounts.is_settled() {
                accounts.assert_nothing_lost();
                return accounts;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
}

fn refusing(durable: &'static str, dead_letter: &'static str) -> JetStreamConsumer {
    JetStreamConsumer::new("ORDERS", durable).filter("orders.>").dead_letter(dead_letter).name(durable)
}

#[tokio::test]
async fn messages_published_with_jetstream_control_headers_are_dead_lettered_with_them_renamed() {
    let h = start().await;
    create_stream_with(
        &h.client,
        stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            allow_message_ttl: true,
            ..Default::default()
        },
    )
    .await;
    let dead = create_stream(&h.client, "DEAD", &["dead.>"]).await;
    let ledger = Ledger::watch(&h.client, "ORDERS", "strict").await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let running = spawn(
        NatsService::new(h.client.clone())
            .state(calls.clone())
            .consume(refusing("strict", "dead.orders"), refuse),
    )
    .await;
    // As `#[nats(stream = ..)]` types and nats.py / nats.go JetStream publishes send them.
    let publisher = Publisher::new(h.client.clone());
    let options = StreamPublish::new().expected_stream("ORDERS").message_id("order-1");
    publisher.publish_to_stream_with("orders.eu", options, r#"{"id":1}"#).await.unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("Nats-TTL", "1h");
    headers.insert("Nats-Expected-Last-Subject-Sequence", "0");
    headers.insert("X-Tenant", "acme");
    let js = jetstream::new(h.client.clone());
    js.publish_with_headers("orders.us", headers, r#"{"id":2}"#.into()).await.unwrap().await.unwrap();

    let accounts = wait_dead_lettered(&ledger, "DEAD", 2).await;
    assert_eq!(accounts.dead_lettered, [1, 2]);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "termed after one delivery each, no retry loop");
    let first = dead.get_raw_message(1).await.unwrap();
    let header = |m: &async_nats::jetstream::message::StreamMessage, name: &str| {
        m.headers.get(name).map(|v| v.as_str().to_owned())
    };
    assert_eq!(header(&first, "Nats-Otel-Original-Nats-Expected-Stream").as_deref(), Some("ORDERS"));
    assert_eq!(header(&first, "Nats-Otel-Original-Nats-Msg-Id").as_deref(), Some("order-1"));
    assert_eq!(header(&first, "Nats-Expected-Stream"), None);
    assert_eq!(&first.payload[..], br#"{"id":1}"#);
    let second = dead.get_raw_message(2).await.unwrap();
    assert_eq!(header(&second, "Nats-Otel-Original-Nats-TTL").as_deref(), Some("1h"));
    assert_eq!(
        header(&second, "Nats-Otel-Original-Nats-Expected-Last-Subject-Sequence").as_deref(),
        Some("0")
    );
    assert_eq!(header(&second, "X-Tenant").as_deref(), Some("acme"), "other headers are copied as they are");
    assert_eq!(header(&second, dlq::ERROR).as_deref(), Some("refused for good"));

    let spans = h.recorder.wait_for(|s| count(s, "term orders.>") == 2).await;
    let stored = named(&spans, "process orders.>")
        .iter()
        .filter(|s| s.events.iter().any(|e| e.name == "dead letter stored"))
        .count();
    assert_eq!(stored, 2, "each process span says where its letter went");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn two_consumers_giving_up_the_same_message_store_a_letter_each() {
    let h = start().await;
    create_stream(&h.client, "ORDERS", &["orders.>"]).await;
    create_stream(&h.client, "DEAD", &["dead.>"]).await;
    let billing = Ledger::watch(&h.client, "ORDERS", "billing").await.unwrap();
    let shipping = Ledger::watch(&h.client, "ORDERS", "shipping").await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let running = spawn(
        NatsService::new(h.client.clone())
            .state(calls.clone())
            .consume(refusing("billing", "dead.orders"), refuse)
            .consume(refusing("shipping", "dead.orders"), refuse),
    )
    .await;
    let options = StreamPublish::new().message_id("order-7");
    Publisher::new(h.client.clone())
        .publish_to_stream_with("orders.eu", options, r#"{"id":7}"#)
        .await
        .unwrap();
    wait_dead_lettered(&billing, "DEAD", 1).await;
    wait_dead_lettered(&shipping, "DEAD", 1).await;
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_dead_letter_subject_inside_the_source_stream_stores_its_letter() {
    let h = start().await;
    create_stream(&h.client, "ORDERS", &["orders.>"]).await;
    let ledger = Ledger::watch(&h.client, "ORDERS", "inside").await.unwrap();
    let consumer =
        JetStreamConsumer::new("ORDERS", "inside").filter("orders.in.*").dead_letter("orders.dead");
    let calls = Arc::new(AtomicUsize::new(0));
    let running =
        spawn(NatsService::new(h.client.clone()).state(calls.clone()).consume(consumer, refuse)).await;
    let options = StreamPublish::new().message_id("order-3");
    Publisher::new(h.client.clone())
        .publish_to_stream_with("orders.in.eu", options, r#"{"id":3}"#)
        .await
        .unwrap();
    let accounts = wait_dead_lettered(&ledger, "ORDERS", 1).await;
    assert_eq!(accounts.dead_lettered, [1]);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_stream_for_its_letter_a_message_waits_between_deliveries_and_is_dead_lettered_once_there_is_one()
 {
    let h = start().await;
    create_stream(&h.client, "ORDERS", &["orders.>"]).await;
    let ledger = Ledger::watch(&h.client, "ORDERS", "early").await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let running = spawn(
        NatsService::new(h.client.clone())
            .state(calls.clone())
            .consume(refusing("early", "dead.orders"), refuse),
    )
    .await;
    h.client.publish("orders.eu", r#"{"id":4}"#.into()).await.unwrap();
    // The letter cannot be stored: the message is nak'ed with a delay (1 s, then
    // 2 s, …), never termed, never redelivered at once.
    within("a second delivery", async {
        while calls.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let accounts = ledger.account(None).await.unwrap();
    assert_eq!((accounts.pending.as_slice(), accounts.lost.as_slice()), (&[1][..], &[][..]), "{accounts}");
    assert!(ledger.terminated().is_empty(), "not termed while its letter is not stored");
    assert!(
        calls.load(Ordering::SeqCst) <= 3,
        "a delay between deliveries: {} so far",
        calls.load(Ordering::SeqCst)
    );

    // The dead-letter stream appears later: the next delivery uses it.
    create_stream(&h.client, "DEAD", &["dead.>"]).await;
    wait_dead_lettered(&ledger, "DEAD", 1).await;
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_poison_message_near_max_payload_is_dead_lettered_without_its_payload() {
    let _recorder = nats_otel_runtime::testing::SpanRecorder::install();
    let server = NatsServer::with_config("max_payload: 65536").unwrap();
    let client = server.connect().await.unwrap();
    create_stream(&client, "ORDERS", &["orders.>"]).await;
    let dead = create_stream(&client, "DEAD", &["dead.>"]).await;
    let ledger = Ledger::watch(&client, "ORDERS", "big").await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let running = spawn(
        NatsService::new(client.clone()).state(calls.clone()).consume(refusing("big", "dead.orders"), refuse),
    )
    .await;
    // Not JSON (poison), and as large as the server allows.
    let poison = vec![b'['; 65536 - 200];
    client.publish("orders.eu", poison.into()).await.unwrap();
    wait_dead_lettered(&ledger, "DEAD", 1).await;
    let letter = dead.get_raw_message(1).await.unwrap();
    assert!(letter.payload.is_empty());
    assert_eq!(letter.headers.get(dlq::PAYLOAD_OMITTED).unwrap().as_str(), (65536 - 200).to_string());
    assert_eq!(letter.headers.get(dlq::STREAM_SEQUENCE).unwrap().as_str(), "1");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_letter_over_the_dead_letter_streams_message_size_is_stored_without_its_payload() {
    let h = start().await;
    create_stream(&h.client, "ORDERS", &["orders.>"]).await;
    let dead = create_stream_with(
        &h.client,
        stream::Config {
            name: "DEAD".into(),
            subjects: vec!["dead.>".into()],
            max_message_size: 2048,
            ..Default::default()
        },
    )
    .await;
    let ledger = Ledger::watch(&h.client, "ORDERS", "small").await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let running = spawn(
        NatsService::new(h.client.clone())
            .state(calls.clone())
            .consume(refusing("small", "dead.orders"), refuse),
    )
    .await;
    h.client.publish("orders.eu", vec![b'{'; 4096].into()).await.unwrap();
    wait_dead_lettered(&ledger, "DEAD", 1).await;
    let letter = dead.get_raw_message(1).await.unwrap();
    assert!(letter.payload.is_empty());
    assert_eq!(letter.headers.get(dlq::PAYLOAD_OMITTED).unwrap().as_str(), "4096");
    running.stop().await.unwrap();
}

/// Takes an `Acker` and never settles: as if its process had died.
async fn never_settles(_acker: Acker, State(calls): State<Arc<AtomicUsize>>) {
    calls.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test]
async fn a_last_delivery_that_never_returns_is_dead_lettered_once_from_the_servers_advisory() {
    let h = start().await;
    create_stream(&h.client, "ORDERS", &["orders.>"]).await;
    let dead = create_stream(&h.client, "DEAD", &["dead.>"]).await;
    let ledger = Ledger::watch(&h.client, "ORDERS", "lost").await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let consumer = || {
        JetStreamConsumer::new("ORDERS", "lost")
            .filter("orders.>")
            .ack_wait(Duration::from_secs(1))
            .max_deliver(2)
            .dead_letter("dead.orders")
    };
    // Two instances of the same service: one letter between them.
    let first =
        spawn(NatsService::new(h.client.clone()).state(calls.clone()).consume(consumer(), never_settles))
            .await;
    let other = h.server.connect().await.unwrap();
    let second = spawn(NatsService::new(other).state(calls.clone()).consume(consumer(), never_settles)).await;
    let mut headers = HeaderMap::new();
    headers.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    h.client.publish_with_headers("orders.eu", headers, "lost work".into()).await.unwrap();

    let accounts = wait_dead_lettered(&ledger, "DEAD", 1).await;
    assert_eq!(accounts.letters.get(&1), Some(&1), "one letter: {accounts}");
    assert_eq!(ledger.exhausted().into_iter().collect::<Vec<_>>(), [1]);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let letter = dead.get_raw_message(1).await.unwrap();
    let header = |name: &str| letter.headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(&letter.payload[..], b"lost work");
    assert_eq!(header(dlq::ERROR_TYPE).as_deref(), Some("max_deliveries"));
    assert_eq!(header(dlq::DELIVERED).as_deref(), Some("2"));
    assert_eq!(
        header("traceparent").as_deref(),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        "the letter keeps the message's trace context"
    );
    first.stop().await.unwrap();
    second.stop().await.unwrap();
}

/// The ledger between a delivery running out and its letter being stored: the
/// server has given the message up (its `MAX_DELIVERIES` advisory) and the
/// service is still writing the letter. That is a letter due, not a loss; the
/// accounts are not settled until it is stored, and a letter that never comes
/// keeps them unsettled and fails `assert_nothing_lost`.
#[tokio::test]
async fn a_message_out_of_deliveries_is_a_letter_due_until_its_letter_is_stored() {
    use futures_util::StreamExt;
    let h = start().await;
    create_stream(&h.client, "ORDERS", &["orders.>"]).await;
    let dead = create_stream(&h.client, "DEAD", &["dead.>"]).await;
    let js = jetstream::new(h.client.clone());
    let consumer: jetstream::consumer::PullConsumer = js
        .get_stream("ORDERS")
        .await
        .unwrap()
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("once".into()),
            max_deliver: 1,
            ack_wait: Duration::from_millis(500),
            ..Default::default()
        })
        .await
        .unwrap();
    let ledger = Ledger::watch(&h.client, "ORDERS", "once").await.unwrap();
    js.publish("orders.eu", r#"{"id":1}"#.into()).await.unwrap().await.unwrap();
    // Delivered once and never acked: the delivery runs out.
    let mut batch = consumer.fetch().max_messages(1).messages().await.unwrap();
    let delivery = batch.next().await.unwrap().unwrap();
    drop(delivery);
    // The server gives it up when a pull asks for more after `ack_wait`.
    within("the MAX_DELIVERIES advisory", async {
        while ledger.exhausted().is_empty() {
            let mut more = consumer
                .fetch()
                .max_messages(1)
                .expires(Duration::from_millis(300))
                .messages()
                .await
                .unwrap();
            while more.next().await.is_some() {}
        }
    })
    .await;

    let accounts = ledger.account(Some("DEAD")).await.unwrap();
    assert_eq!(accounts.letter_due, [1], "{accounts}");
    assert!(accounts.lost.is_empty(), "not lost while its letter may come: {accounts}");
    assert!(!accounts.is_settled(), "{accounts}");
    let strict = std::panic::catch_unwind(|| accounts.assert_nothing_lost());
    assert!(strict.is_err(), "a letter that never comes is a loss once the test ends");

    // The letter, as the service writes it.
    let mut letter = async_nats::HeaderMap::new();
    letter.insert(dlq::STREAM, "ORDERS");
    letter.insert(dlq::CONSUMER, "once");
    letter.insert(dlq::STREAM_SEQUENCE, "1");
    js.publish_with_headers("dead.orders", letter, r#"{"id":1}"#.into()).await.unwrap().await.unwrap();
    let accounts = ledger.account(Some("DEAD")).await.unwrap();
    assert_eq!(
        (accounts.dead_lettered.as_slice(), accounts.letter_due.as_slice()),
        (&[1][..], &[][..]),
        "{accounts}"
    );
    assert!(accounts.is_settled(), "{accounts}");
    accounts.assert_nothing_lost();
    drop(dead);
}
