//! Batch handlers against a real server: one `process` span per batch linked
//! to every message, each message settled on its own (a partial failure
//! settles exactly the failed items, poison and panicking items alone, dead
//! letters per item), batches kept alive past `ack_wait`, and nothing lost
//! when the service stops or the server goes away mid-batch. Every test reads
//! the consumer's state from the server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use common::*;
use nats_otel_runtime::testing::{Accounts, Ledger, RawPublisher};
use nats_otel_runtime::{BatchItem, JetStreamConsumer, Rejection, ServeErrorKind};
use nats_otel_runtime::{Extractor, FromMessage, Incoming, prelude::*};

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: u64,
}

/// What the handlers saw: each batch's ids, in order.
#[derive(Clone, Default)]
struct Batches(Arc<Mutex<Vec<Vec<u64>>>>);

impl Batches {
    fn record(&self, ids: Vec<u64>) {
        self.0.lock().unwrap().push(ids);
    }
    fn sizes(&self) -> Vec<usize> {
        self.0.lock().unwrap().iter().map(Vec::len).collect()
    }
    fn calls(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn seen(&self, id: u64) -> usize {
        self.0.lock().unwrap().iter().flatten().filter(|&&i| i == id).count()
    }
    async fn reach_calls(&self, n: usize) {
        within("handler calls", async {
            while self.calls() < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
}

async fn orders_stream(client: &async_nats::Client, storage: stream::StorageType) -> stream::Stream {
    jetstream::new(client.clone())
        .create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            storage,
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn dead_stream(client: &async_nats::Client) {
    jetstream::new(client.clone())
        .create_stream(stream::Config {
            name: "DEAD".into(),
            subjects: vec!["dead.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn publish_orders(client: &async_nats::Client, ids: std::ops::RangeInclusive<u64>) {
    let publisher = Publisher::new(client.clone());
    for id in ids {
        publisher.publish_to_stream(format!("orders.{}", id % 3), format!(r#"{{"id":{id}}}"#)).await.unwrap();
    }
}

/// Polls the ledger until nothing is pending and `done` holds, for up to `seconds`.
async fn accounts_until(
    ledger: &Ledger,
    dead: Option<&str>,
    seconds: u64,
    done: impl Fn(&Accounts) -> bool,
) -> Accounts {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        let accounts = ledger.account(dead).await.unwrap();
        // Checked once settled: a message out of deliveries has its letter
        // written just after the server says so (a letter due until then).
        if accounts.is_settled() && done(&accounts) {
            accounts.assert_nothing_lost();
            return accounts;
        }
        assert!(tokio::time::Instant::now() < deadline, "after {seconds}s: {accounts}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[jetstream_consumer(stream = "ORDERS", durable = "bulk", batch_size = 100, batch_wait = "100ms")]
async fn store(orders: Batch<Json<Order>>, State(batches): State<Batches>) {
    batches.record(orders.iter().map(|order| order.0.id).collect());
}

#[tokio::test]
async fn a_batch_is_one_process_span_linked_to_each_message_and_every_message_is_acked() {
    let (exporter, provider) = install_metrics();
    let h = start().await;
    let stream = orders_stream(&h.client, stream::StorageType::Memory).await;
    publish_orders(&h.client, 1..=250).await;
    let batches = Batches::default();
    let running = spawn(NatsService::with_state(h.client.clone(), batches.clone()).handler(store)).await;

    let info = settled(&stream, "bulk", 30).await;
    assert_eq!(info.delivered.stream_sequence, 250);
    assert_eq!(batches.sizes().iter().sum::<usize>(), 250, "every message once");
    assert!(batches.sizes().iter().all(|&size| size <= 100), "{:?}", batches.sizes());
    assert_eq!(batches.sizes()[..2], [100, 100], "full batches while messages wait: {:?}", batches.sizes());
    let ids: Vec<u64> = batches.0.lock().unwrap().iter().flatten().copied().collect();
    assert_eq!(ids, (1..=250).collect::<Vec<_>>(), "in stream order");

    let spans = h.recorder.wait_for(|s| count(s, "ack ORDERS") == 250).await;
    let processes = named(&spans, "process ORDERS");
    assert_eq!(processes.len(), batches.calls(), "one process span per batch");
    let sends: Vec<_> = spans.iter().filter(|s| s.name.starts_with("send orders.")).collect();
    for process in &processes {
        let size = attr_i64(process, "messaging.batch.message_count").unwrap();
        assert_eq!(process.links.links.len() as i64, size, "a link per message");
        assert_eq!(process.parent_span_id, opentelemetry::trace::SpanId::INVALID, "a batch is a new root");
        for link in &process.links.links {
            assert!(
                sends.iter().any(|send| send.span_context.span_id() == link.span_context.span_id()),
                "each link is a publisher's span"
            );
        }
        let acks = named(&spans, "ack ORDERS")
            .into_iter()
            .filter(|ack| ack.parent_span_id == process.span_context.span_id())
            .count() as i64;
        assert_eq!(acks, size, "each message's settle span is a child of its batch");
        assert_eq!(attr_str(process, "messaging.operation.type").as_deref(), Some("process"));
        assert_eq!(attr_str(process, "messaging.consumer.group.name").as_deref(), Some("bulk"));
        assert!(
            attr(process, "messaging.nats.jetstream.ack").is_none(),
            "each message's own settle span says"
        );
    }
    running.stop().await.unwrap();

    // Messages are counted one by one; a batch is one process operation.
    provider.force_flush().unwrap();
    let points = points(&exporter);
    assert_eq!(total(&points, "messaging.client.consumed.messages", |_| true), 250.0);
    assert_eq!(total(&points, "messaging.process.duration", |_| true), batches.calls() as f64);
    let acks = |p: &Point| p.attr("messaging.operation.name") == Some("ack");
    assert_eq!(total(&points, "messaging.client.operation.duration", acks), 250.0);
}

#[derive(Debug)]
struct Declined(u64);

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "order {} declined", self.0)
    }
}

impl HandlerError for Declined {
    fn retry(&self) -> nats_otel_runtime::Retry {
        // Multiples of 5 for good; the others once, then they pass.
        if self.0.is_multiple_of(5) {
            nats_otel_runtime::Retry::Never
        } else {
            nats_otel_runtime::Retry::Backoff
        }
    }
}

/// An extractor that panics on the order with id 13.
struct Touchy(Order);

impl Extractor for Touchy {}

impl<S> FromMessage<S> for Touchy {
    fn from_message(incoming: &Incoming, state: &S) -> Result<Self, Rejection> {
        let Json(order) = Json::<Order>::from_message(incoming, state)?;
        if order.id == 13 {
            panic!("an extractor that panics on order 13");
        }
        Ok(Touchy(order))
    }
}

#[jetstream_consumer(
    stream = "ORDERS",
    durable = "picky",
    batch_size = 50,
    batch_wait = "50ms",
    max_deliver = 3,
    backoff = ["300ms", "300ms"],
    dead_letter = "dead.orders"
)]
async fn picky(orders: Batch<Touchy>, State(batches): State<Batches>) -> BatchOutcome<Declined> {
    let mut outcome = BatchOutcome::new();
    let items: Vec<BatchItem<Touchy>> = orders.into_items();
    batches.record(items.iter().map(|item| item.0.id).collect());
    for item in &items {
        let id = item.0.id;
        let first_delivery = item.info().is_some_and(|info| info.delivered == 1);
        if id.is_multiple_of(5) || (id % 7 == 3 && first_delivery) {
            outcome.fail(item.id(), Declined(id));
        }
    }
    outcome
}

#[tokio::test]
async fn a_partial_failure_settles_exactly_the_failed_items_and_bad_items_alone() {
    let h = start().await;
    orders_stream(&h.client, stream::StorageType::Memory).await;
    dead_stream(&h.client).await;
    let ledger = Ledger::watch(&h.client, "ORDERS", "picky").await.unwrap();
    publish_orders(&h.client, 1..=30).await; // sequences 1..=30 carry ids 1..=30
    // Poison from a raw-protocol publisher: not JSON (sequence 31).
    let mut raw = RawPublisher::connect(&h.server).await.unwrap();
    raw.publish_without_headers("orders.0", b"{not json").await.unwrap();
    raw.flush().await.unwrap();
    let batches = Batches::default();
    let running = spawn(NatsService::with_state(h.client.clone(), batches.clone()).handler(picky)).await;

    // Termed with their letter: the multiples of 5 (declined for good), the
    // poison (never reached the handler) and 13 (its extractor panicked on each
    // of its 3 deliveries).
    let accounts = accounts_until(&ledger, Some("DEAD"), 30, |a| a.dead_lettered.len() == 8).await;
    assert_eq!(accounts.dead_lettered, [5, 10, 13, 15, 20, 25, 30, 31]);
    let acked: Vec<u64> = (1..=30).filter(|id| id % 5 != 0 && *id != 13).collect();
    assert_eq!(accounts.acked, acked);
    assert_eq!(accounts.letters.len(), 8, "one letter each");
    // Redelivered are exactly the failed ones: 3, 10, 17, 24 (once, then acked; 10 then
    // declined for good) and 13 (its panics); the others reached the handler once.
    for id in 1..=30u64 {
        let expected = match id {
            13 => 0,
            3 | 17 | 24 => 2,
            _ => 1,
        };
        assert_eq!(batches.seen(id), expected, "order {id}");
    }
    let spans = h.recorder.wait_for(|s| count(s, "term ORDERS") == 8).await;
    let failed_events: usize = named(&spans, "process ORDERS")
        .iter()
        .flat_map(|s| &s.events.events)
        .filter(|e| e.name == "Batch item failed")
        .count();
    // 5, 10, 15, 20, 25, 30 and 3, 17, 24 declined; the poison once; 13 three times.
    assert_eq!(failed_events, 6 + 3 + 1 + 3);
    let first = named(&spans, "process ORDERS")
        .into_iter()
        .find(|s| attr_i64(s, "messaging.batch.message_count") == Some(31))
        .expect("the first batch held all 31");
    assert_eq!(attr_i64(first, "batch.failure_count"), Some(6 + 3 + 1 + 1));
    assert_eq!(attr_i64(first, "batch.success_count"), Some(31 - 11));
    running.stop().await.unwrap();
}

/// Panics on its first call, then records.
#[jetstream_consumer(stream = "ORDERS", durable = "fragile", batch_size = 10, batch_wait = "20ms", backoff = ["200ms"])]
async fn fragile(orders: Batch<Json<Order>>, State(batches): State<Batches>) {
    let first = batches.calls() == 0;
    batches.record(orders.iter().map(|order| order.0.id).collect());
    if first {
        panic!("a batch handler that panics once");
    }
}

#[tokio::test]
async fn a_panicking_batch_handler_naks_its_batch_and_the_service_goes_on() {
    let h = start().await;
    let stream = orders_stream(&h.client, stream::StorageType::Memory).await;
    publish_orders(&h.client, 1..=10).await;
    let batches = Batches::default();
    let running = spawn(NatsService::with_state(h.client.clone(), batches.clone()).handler(fragile)).await;
    batches.reach_calls(2).await;
    let info = settled(&stream, "fragile", 20).await;
    assert_eq!(info.delivered.stream_sequence, 10);
    assert_eq!(batches.sizes(), [10, 10], "the whole batch again, once");
    let spans = h.recorder.wait_for(|s| count(s, "ack ORDERS") == 10).await;
    assert_eq!(count(&spans, "nak ORDERS"), 10);
    let failed = named(&spans, "process ORDERS")
        .into_iter()
        .find(|s| attr_str(s, "error.type").as_deref() == Some("panic"))
        .expect("the panic is on the batch's span");
    assert_eq!(attr_i64(failed, "batch.failure_count"), Some(10));
    assert!(!running.is_finished(), "still serving");
    running.stop().await.unwrap();
}

/// Takes 2.5 s per batch: longer than the consumer's 1 s `ack_wait`.
#[jetstream_consumer(
    stream = "ORDERS",
    durable = "slow",
    batch_size = 20,
    batch_wait = "200ms",
    ack_wait = "1s"
)]
async fn slow(orders: Batch<Json<Order>>, State(batches): State<Batches>) {
    batches.record(orders.iter().map(|order| order.0.id).collect());
    tokio::time::sleep(Duration::from_millis(2500)).await;
}

#[tokio::test]
async fn a_batch_slower_than_ack_wait_is_kept_alive_and_never_redelivered() {
    let h = start().await;
    let stream = orders_stream(&h.client, stream::StorageType::Memory).await;
    publish_orders(&h.client, 1..=40).await;
    let batches = Batches::default();
    let running = spawn(NatsService::with_state(h.client.clone(), batches.clone()).handler(slow)).await;
    let info = settled(&stream, "slow", 30).await;
    assert_eq!(
        info.delivered.consumer_sequence, 40,
        "one delivery each: kept alive while handled, and while waiting for a batch"
    );
    assert_eq!(batches.sizes().iter().sum::<usize>(), 40);
    assert!((1..=40).all(|id| batches.seen(id) == 1));
    running.stop().await.unwrap();
}

/// Gathers for 800 ms of a 1 s `ack_wait`, then takes 900 ms.
#[jetstream_consumer(
    stream = "ORDERS",
    durable = "patient",
    batch_size = 100,
    batch_wait = "800ms",
    ack_wait = "1s"
)]
async fn patient(orders: Batch<Json<Order>>, State(batches): State<Batches>) {
    batches.record(orders.iter().map(|order| order.0.id).collect());
    tokio::time::sleep(Duration::from_millis(900)).await;
}

#[tokio::test]
async fn a_batch_that_gathered_for_most_of_ack_wait_is_kept_alive_from_its_hand_out() {
    let h = start().await;
    let stream = orders_stream(&h.client, stream::StorageType::Memory).await;
    publish_orders(&h.client, 1..=5).await;
    let batches = Batches::default();
    let running = spawn(NatsService::with_state(h.client.clone(), batches.clone()).handler(patient)).await;
    let info = settled(&stream, "patient", 20).await;
    // Unacknowledged for 1.7 s against a 1 s ack timeout: told in progress as
    // the batch went out, and again by the handler's heartbeats.
    assert_eq!(info.delivered.consumer_sequence, 5, "one delivery each");
    assert_eq!(batches.sizes(), [5]);
    running.stop().await.unwrap();
}

/// Takes 1 s per batch, so a stop finds one in flight.
#[jetstream_consumer(stream = "ORDERS", durable = "stopping", batch_size = 25, concurrency = 1)]
async fn unhurried(orders: Batch<Json<Order>>, State(batches): State<Batches>) {
    batches.record(orders.iter().map(|order| order.0.id).collect());
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_stop_mid_batch_finishes_the_batch_and_gives_back_the_rest() {
    let h = start().await;
    orders_stream(&h.client, stream::StorageType::Memory).await;
    let ledger = Ledger::watch(&h.client, "ORDERS", "stopping").await.unwrap();
    publish_orders(&h.client, 1..=100).await;
    let batches = Batches::default();
    let running = spawn(NatsService::with_state(h.client.clone(), batches.clone()).handler(unhurried)).await;
    batches.reach_calls(1).await;
    running.stop().await.unwrap();
    let handled = batches.sizes().iter().sum::<usize>();
    assert!(handled >= 25, "the batch in flight finished");
    // The handled messages are acked, the others still the consumer's.
    let accounts = ledger.account(None).await.unwrap();
    accounts.assert_nothing_lost();
    assert_eq!(accounts.acked.len(), handled, "{accounts}");

    // Given back at once (nak'ed), not left to their 30 s ack timeout: another
    // instance takes the rest well within it.
    let running = spawn(NatsService::with_state(h.client.clone(), batches.clone()).handler(unhurried)).await;
    accounts_until(&ledger, None, 15, |a| a.acked.len() == 100).await;
    assert!((1..=100).all(|id| batches.seen(id) == 1), "none twice");
    running.stop().await.unwrap();
}

#[jetstream_consumer(
    stream = "ORDERS",
    durable = "enduring",
    batch_size = 50,
    batch_wait = "50ms",
    ack_wait = "3s"
)]
async fn enduring(orders: Batch<Json<Order>>, State(batches): State<Batches>) {
    batches.record(orders.iter().map(|order| order.0.id).collect());
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn the_server_killed_mid_batch_loses_nothing() {
    let mut h = start().await;
    orders_stream(&h.client, stream::StorageType::File).await;
    publish_orders(&h.client, 1..=300).await;
    let batches = Batches::default();
    let running = spawn(NatsService::with_state(h.client.clone(), batches.clone()).handler(enduring)).await;
    batches.reach_calls(2).await;
    h.server.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.server.restart().unwrap();
    within_secs(60, "every order handled", async {
        while !(1..=300).all(|id| batches.seen(id) >= 1) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let stream = jetstream::new(h.client.clone()).get_stream("ORDERS").await.unwrap();
    let info = settled(&stream, "enduring", 60).await;
    assert_eq!(info.delivered.stream_sequence, 300, "every message acked on the server");
    running.stop().await.unwrap();
}

async fn one_at_a_time(Json(_order): Json<Order>) {}

async fn batch_fn(orders: Batch<Json<Order>>) -> Result<(), ServiceError> {
    let _ = orders.len();
    Ok(())
}

#[tokio::test]
async fn a_handler_that_does_not_match_its_consumer_fails_start() {
    let h = start().await;
    orders_stream(&h.client, stream::StorageType::Memory).await;
    let batched = JetStreamConsumer::new("ORDERS", "a").batches(10, Duration::from_millis(10));
    let error = NatsService::new(h.client.clone()).consume(batched, one_at_a_time).start().await.unwrap_err();
    assert!(format!("{error:#}").contains("handler reads one message: take `Batch<T>`"), "{error}");
    assert_eq!(error.kind(), ServeErrorKind::InvalidOptions);
    let single = JetStreamConsumer::new("ORDERS", "b");
    let error = NatsService::new(h.client.clone()).consume(single, batch_fn).start().await.unwrap_err();
    assert!(format!("{error:#}").contains("the consumer has no batches"), "{error}");
    assert_eq!(error.kind(), ServeErrorKind::InvalidOptions);
    let too_many =
        JetStreamConsumer::new("ORDERS", "c").max_ack_pending(100).batches(150, Duration::from_millis(10));
    let error = NatsService::new(h.client.clone()).consume(too_many, batch_fn).start().await.unwrap_err();
    assert!(format!("{error:#}").contains("exceed `max_ack_pending = 100`"), "{error}");
    assert_eq!(error.kind(), ServeErrorKind::InvalidOptions);
    // An undecorated batch fn on a batched consumer serves.
    let fine = JetStreamConsumer::new("ORDERS", "d").batches(10, Duration::from_millis(10));
    let running = spawn(NatsService::new(h.client.clone()).consume(fine, batch_fn)).await;
    running.stop().await.unwrap();
}

#[jetstream_consumer(stream = "ORDERS", durable = "doomed", batch_size = 10, batch_wait = "20ms")]
async fn doomed(orders: Batch<Json<Order>>, State(batches): State<Batches>) {
    batches.record(orders.iter().map(|order| order.0.id).collect());
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_consumer_deleted_mid_batch_ends_the_service_with_a_clear_error() {
    let h = start().await;
    let stream = orders_stream(&h.client, stream::StorageType::Memory).await;
    publish_orders(&h.client, 1..=50).await;
    let batches = Batches::default();
    let running = spawn(NatsService::with_state(h.client.clone(), batches.clone()).handler(doomed)).await;
    batches.reach_calls(1).await;
    stream.delete_consumer("doomed").await.unwrap();
    let err = within("the service ends", running.join()).await.unwrap_err();
    assert_eq!(err.kind(), nats_otel_runtime::ServeErrorKind::ConsumerDeleted, "{err}");
    assert!(err.to_string().contains("doomed"), "{err}");
}

/// Declines the order with id 2 for good; the others are stored.
#[jetstream_consumer(
    stream = "ORDERS",
    durable = "refused",
    batch_size = 10,
    batch_wait = "20ms",
    dead_letter = "dead.orders"
)]
async fn declines_two(orders: Batch<Json<Order>>, State(batches): State<Batches>) -> BatchOutcome<Declined> {
    batches.record(orders.iter().map(|order| order.0.id).collect());
    let mut outcome = BatchOutcome::new();
    for order in &orders {
        if order.0.id == 2 {
            outcome.fail(order.id(), Declined(5)); // a multiple of 5: for good
        }
    }
    outcome
}

#[tokio::test]
async fn a_dead_letter_the_server_refuses_keeps_its_message_until_it_is_stored() {
    let h = start().await;
    orders_stream(&h.client, stream::StorageType::Memory).await;
    let ledger = Ledger::watch(&h.client, "ORDERS", "refused").await.unwrap();
    publish_orders(&h.client, 1..=3).await;
    // No stream takes `dead.orders` yet: the server refuses the letter.
    let batches = Batches::default();
    let running =
        spawn(NatsService::with_state(h.client.clone(), batches.clone()).handler(declines_two)).await;
    within("order 2 handled twice", async {
        while batches.seen(2) < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(ledger.terminated().is_empty(), "never termed without its letter");
    // 1 and 3 acked; only 2 is still the consumer's (nak'ed, to be dead-lettered again).
    let orders = jetstream::new(h.client.clone()).get_stream("ORDERS").await.unwrap();
    let info = orders.consumer_info("refused").await.unwrap().clone();
    assert_eq!((info.ack_floor.stream_sequence, info.num_ack_pending), (1, 1), "{info:?}");
    assert_eq!((batches.seen(1), batches.seen(3)), (1, 1), "the others are not held back");
    let spans = h.recorder.spans();
    let warned = named(&spans, "process ORDERS")
        .iter()
        .flat_map(|s| &s.events.events)
        .any(|e| e.name.contains("dead letter was not stored"));
    assert!(warned, "the batch's span says the letter failed");

    // Once the stream exists the letter is stored, then the message termed.
    dead_stream(&h.client).await;
    let accounts = accounts_until(&ledger, Some("DEAD"), 30, |a| a.dead_lettered == [2]).await;
    assert_eq!(accounts.acked, [1, 3]);
    assert_eq!(accounts.letters.get(&2), Some(&1), "one letter");
    running.stop().await.unwrap();
}
