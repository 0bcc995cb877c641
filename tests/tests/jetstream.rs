//! `#[jetstream_consumer]` against a real nats-server: settlement from the
//! handler's result, checked against the consumer state the server reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use common::*;
use nats_otel_runtime::jetstream::dead_letter_headers as dlq;
use nats_otel_runtime::prelude::*;
use nats_otel_runtime::{ServeErrorKind, Settlement};
use opentelemetry::trace::{SpanKind, Status};
use tokio::sync::Mutex;

async fn orders_stream(client: &async_nats::Client) -> stream::Stream {
    jetstream::new(client.clone())
        .create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap()
}

/// What handlers saw, shared with the test.
#[derive(Clone, Default)]
struct Log {
    calls: Arc<Mutex<Vec<(u64, i64, Instant)>>>,
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Log {
    async fn record(&self, id: u64, info: &JetStreamInfo) {
        self.calls.lock().await.push((id, info.delivered, Instant::now()));
    }
    async fn calls_for(&self, id: u64) -> Vec<(i64, Instant)> {
        self.calls.lock().await.iter().filter(|c| c.0 == id).map(|c| (c.1, c.2)).collect()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: u64,
}

#[jetstream_consumer(stream = "ORDERS", durable = "billing", filter = "orders.*.created", ack = "confirmed")]
async fn bill(Json(order): Json<Order>, info: JetStreamInfo, State(log): State<Log>) {
    log.record(order.id, &info).await;
}

#[tokio::test]
async fn ok_acks_and_the_span_tree_is_publish_process_settle() {
    let h = start().await;
    let stream = orders_stream(&h.client).await;
    let log = Log::default();
    let running = spawn(NatsService::new(h.client.clone()).state(log.clone()).handler(bill)).await;

    let publisher = Publisher::new(h.client.clone());
    for id in 1..=5 {
        publisher.publish_json("orders.eu.created", &Order { id }).await.unwrap();
    }
    let spans = h.recorder.wait_for(|s| count(s, "ack orders.*.created") == 5).await;

    // The server agrees: everything acked, nothing pending.
    let info = stream.clone().consumer_info("billing").await.unwrap().clone();
    assert_eq!(info.ack_floor.stream_sequence, 5);
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.num_pending, 0);
    assert_eq!(info.num_redelivered, 0);

    let send = &named(&spans, "send orders.eu.created")[0];
    let process = named(&spans, "process orders.*.created")
        .into_iter()
        .find(|p| p.parent_span_id == send.span_context.span_id())
        .expect("process span parented on its publish");
    assert_eq!(process.span_kind, SpanKind::Consumer);
    assert_eq!(process.status, Status::Unset);
    for (key, want) in [
        ("messaging.system", "nats"),
        ("messaging.operation.type", "process"),
        ("messaging.destination.name", "orders.eu.created"),
        ("messaging.destination.template", "orders.*.created"),
        ("messaging.destination.subscription.name", "billing"),
        ("messaging.consumer.group.name", "billing"),
        ("messaging.nats.jetstream.stream", "ORDERS"),
        ("messaging.nats.jetstream.consumer", "billing"),
        ("messaging.nats.jetstream.ack", "ack"),
    ] {
        assert_eq!(attr_str(process, key).as_deref(), Some(want), "{key}");
    }
    let sequence = attr_i64(process, "messaging.nats.jetstream.sequence").unwrap();
    assert_eq!(attr_str(process, "messaging.message.id"), Some(format!("ORDERS:{sequence}")));
    assert_eq!(attr_i64(process, "messaging.nats.jetstream.num_delivered"), Some(1));
    assert!(attr_i64(process, "messaging.nats.jetstream.consumer_sequence").is_some());
    assert!(attr_i64(process, "messaging.nats.jetstream.num_pending").is_some());
    assert!(attr(process, "messaging.nats.reply_to").is_none(), "ack subjects are not recorded");

    let settle = named(&spans, "ack orders.*.created")
        .into_iter()
        .find(|s| s.parent_span_id == process.span_context.span_id())
        .expect("settle span under the process span");
    assert_eq!(settle.span_kind, SpanKind::Client);
    assert_eq!(attr_str(settle, "messaging.operation.type").as_deref(), Some("settle"));
    assert_eq!(attr_str(settle, "messaging.operation.name").as_deref(), Some("ack"));
    assert!(attr(settle, "messaging.message.body.size").is_none(), "no size on settle spans");

    assert_eq!(log.calls.lock().await.len(), 5);
    running.stop().await.unwrap();
}

#[derive(Debug)]
struct Flaky;
impl std::fmt::Display for Flaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("try again")
    }
}
impl HandlerError for Flaky {}

#[jetstream_consumer(stream = "ORDERS", durable = "retry", ack = "confirmed", max_deliver = 3, backoff = ["1s"])]
async fn fails_once(
    Json(order): Json<Order>,
    info: JetStreamInfo,
    State(log): State<Log>,
) -> Result<(), Flaky> {
    log.record(order.id, &info).await;
    if info.delivered == 1 { Err(Flaky) } else { Ok(()) }
}

#[tokio::test]
async fn err_naks_with_the_backoff_delay_then_the_retry_acks() {
    let h = start().await;
    let stream = orders_stream(&h.client).await;
    let log = Log::default();
    let running = spawn(NatsService::new(h.client.clone()).state(log.clone()).handler(fails_once)).await;
    Publisher::new(h.client.clone()).publish_json("orders.eu.created", &Order { id: 7 }).await.unwrap();

    let spans = h.recorder.wait_for(|s| count(s, "ack ORDERS") == 1).await;
    let calls = log.calls_for(7).await;
    assert_eq!(calls.iter().map(|c| c.0).collect::<Vec<_>>(), vec![1, 2]);
    let waited = calls[1].1 - calls[0].1;
    assert!(waited >= Duration::from_millis(950), "redelivered after {waited:?}, before the 1s backoff");

    let nak = one(&spans, "nak ORDERS");
    assert_eq!(attr_str(nak, "messaging.operation.name").as_deref(), Some("nak"));
    let outcomes: Vec<_> = named(&spans, "process ORDERS")
        .iter()
        .map(|p| attr_str(p, "messaging.nats.jetstream.ack").unwrap())
        .collect();
    assert_eq!(outcomes, vec!["nak", "ack"]);
    let failed = named(&spans, "process ORDERS")
        .into_iter()
        .find(|p| attr_i64(p, "messaging.nats.jetstream.num_delivered") == Some(1))
        .unwrap();
    assert!(matches!(failed.status, Status::Error { .. }));
    let info = stream.clone().consumer_info("retry").await.unwrap().clone();
    assert_eq!((info.num_ack_pending, info.num_pending), (0, 0));
    running.stop().await.unwrap();
}

#[jetstream_consumer(stream = "ORDERS", durable = "strict", ack = "confirmed", max_deliver = 5)]
async fn strict(
    Json(order): Json<Order>,
    info: JetStreamInfo,
    State(log): State<Log>,
) -> Result<(), Permanent<ServiceError>> {
    log.record(order.id, &info).await;
    Err(Permanent(ServiceError::new(422, "order cannot be billed")))
}

#[tokio::test]
async fn permanent_errors_and_poison_messages_are_termed_never_redelivered() {
    let h = start().await;
    let stream = orders_stream(&h.client).await;
    let log = Log::default();
    let running = spawn(NatsService::new(h.client.clone()).state(log.clone()).handler(strict)).await;
    h.client.publish("orders.eu.created", r#"{"id": 1}"#.into()).await.unwrap();
    h.client.publish("orders.eu.created", "not json".into()).await.unwrap();
    h.client.publish("orders.eu.created", vec![0xff, 0x00].into()).await.unwrap();

    let spans = h.recorder.wait_for(|s| count(s, "term ORDERS") == 3).await;
    let info = stream.clone().consumer_info("strict").await.unwrap().clone();
    assert_eq!(info.ack_floor.stream_sequence, 3, "terms count as settled");
    assert_eq!((info.num_ack_pending, info.num_redelivered), (0, 0));
    assert_eq!(
        log.calls.lock().await.len(),
        1,
        "poison never reaches the handler; the permanent error runs once"
    );

    let processes = named(&spans, "process ORDERS");
    assert!(processes.iter().all(|p| attr_str(p, "messaging.nats.jetstream.ack").as_deref() == Some("term")));
    let poison = processes
        .iter()
        .filter(|p| attr_str(p, "error.type").as_deref() == Some("serde_json::Error"))
        .count();
    assert_eq!(poison, 2);
    running.stop().await.unwrap();
}

#[jetstream_consumer(stream = "ORDERS", durable = "doomed", ack = "confirmed", max_deliver = 2, backoff = ["1s"], dead_letter = "dead.orders")]
async fn always_fails(
    Json(order): Json<Order>,
    info: JetStreamInfo,
    State(log): State<Log>,
) -> Result<(), Flaky> {
    log.record(order.id, &info).await;
    Err(Flaky)
}

#[tokio::test]
async fn the_last_delivery_failing_is_dead_lettered_with_its_context() {
    let h = start().await;
    let stream = orders_stream(&h.client).await;
    let js = jetstream::new(h.client.clone());
    let dead = js
        .create_stream(stream::Config {
            name: "DEAD".into(),
            subjects: vec!["dead.>".into()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
    let log = Log::default();
    let running = spawn(NatsService::new(h.client.clone()).state(log.clone()).handler(always_fails)).await;
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", "order-9");
    Publisher::new(h.client.clone())
        .publish_with_headers("orders.us.created", headers, r#"{"id":9}"#)
        .await
        .unwrap();

    let spans = h.recorder.wait_for(|s| count(s, "term ORDERS") == 1).await;
    assert_eq!(log.calls_for(9).await.len(), 2, "delivered max_deliver times");
    let last = named(&spans, "process ORDERS")
        .into_iter()
        .find(|p| attr_i64(p, "messaging.nats.jetstream.num_delivered") == Some(2))
        .unwrap();
    assert_eq!(
        attr_str(last, "messaging.nats.jetstream.ack").as_deref(),
        Some(Settlement::DeadLetter.as_str())
    );
    assert_eq!(attr_str(last, "messaging.message.id").as_deref(), Some("order-9"));

    let letter = dead.get_raw_message(1).await.unwrap();
    assert_eq!(letter.subject.as_str(), "dead.orders");
    assert_eq!(&letter.payload[..], br#"{"id":9}"#);
    let headers = letter.headers;
    let header = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(header(dlq::SUBJECT).as_deref(), Some("orders.us.created"));
    assert_eq!(header(dlq::STREAM).as_deref(), Some("ORDERS"));
    assert_eq!(header(dlq::STREAM_SEQUENCE).as_deref(), Some("1"));
    assert_eq!(header(dlq::CONSUMER).as_deref(), Some("doomed"));
    assert_eq!(header(dlq::DELIVERED).as_deref(), Some("2"));
    assert_eq!(header(dlq::ERROR).as_deref(), Some("try again"));
    assert_eq!(
        header("Nats-Otel-Original-Nats-Msg-Id").as_deref(),
        Some("order-9"),
        "the original id kept, under a name the dead-letter stream does not act on"
    );
    assert_eq!(
        header("Nats-Msg-Id").as_deref(),
        Some("nats-otel-dlq:ORDERS:doomed:1"),
        "the letter's own id"
    );
    let traceparent = header("traceparent").expect("trace context");
    assert!(traceparent.contains(&last.span_context.trace_id().to_string()), "{traceparent}");

    let info = stream.clone().consumer_info("doomed").await.unwrap().clone();
    assert_eq!((info.num_ack_pending, info.num_pending), (0, 0));
    running.stop().await.unwrap();
}

#[jetstream_consumer(stream = "ORDERS", durable = "slow", ack = "confirmed", ack_wait = "1s")]
async fn slow(Json(order): Json<Order>, info: JetStreamInfo, State(log): State<Log>) {
    log.record(order.id, &info).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
}

#[tokio::test]
async fn in_progress_heartbeats_keep_a_slow_handler_from_redelivery() {
    let h = start().await;
    let stream = orders_stream(&h.client).await;
    let log = Log::default();
    let running = spawn(NatsService::new(h.client.clone()).state(log.clone()).handler(slow)).await;
    h.client.publish("orders.eu.created", r#"{"id":3}"#.into()).await.unwrap();
    h.recorder.wait_for(|s| count(s, "ack ORDERS") == 1).await;
    assert_eq!(log.calls_for(3).await.len(), 1, "handled once though it ran 3x ack_wait");
    let info = stream.clone().consumer_info("slow").await.unwrap().clone();
    assert_eq!((info.num_redelivered, info.num_ack_pending), (0, 0));
    running.stop().await.unwrap();
}

#[jetstream_consumer(stream = "ORDERS", durable = "bounded", concurrency = 3)]
async fn bounded(Json(order): Json<Order>, info: JetStreamInfo, State(log): State<Log>) {
    let now = log.running.fetch_add(1, Ordering::SeqCst) + 1;
    log.peak.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    log.record(order.id, &info).await;
    log.running.fetch_sub(1, Ordering::SeqCst);
}

#[tokio::test]
async fn never_more_than_concurrency_handlers_in_flight() {
    let h = start().await;
    orders_stream(&h.client).await;
    let log = Log::default();
    let running = spawn(NatsService::new(h.client.clone()).state(log.clone()).handler(bounded)).await;
    for id in 0..30 {
        h.client.publish("orders.eu.created", format!(r#"{{"id":{id}}}"#).into()).await.unwrap();
    }
    h.recorder.wait_for(|s| count(s, "ack ORDERS") == 30).await;
    assert_eq!(log.peak.load(Ordering::SeqCst), 3);
    running.stop().await.unwrap();
}

#[jetstream_consumer(stream = "ORDERS", durable = "missing", create = false)]
async fn bind_only(_body: Bytes) {}

#[tokio::test]
async fn create_false_against_a_missing_consumer_is_a_clear_error() {
    let h = start().await;
    orders_stream(&h.client).await;
    let err = NatsService::new(h.client.clone()).handler(bind_only).start().await.unwrap_err();
    assert_eq!(err.kind(), ServeErrorKind::ConsumerNotFound);
    let text = err.to_string();
    assert!(text.contains("bind_only") && text.contains("ORDERS") && text.contains("missing"), "{text}");

    let err = NatsService::new(h.client.clone())
        .consume(nats_otel_runtime::JetStreamConsumer::new("NOPE", "x"), bind_only_plain)
        .start()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ServeErrorKind::StreamNotFound);
}

async fn bind_only_plain(_body: Bytes) {}

#[jetstream_consumer(
    stream = "ORDERS",
    durable = "steady",
    ack = "confirmed",
    ack_wait = "2s",
    concurrency = 8
)]
async fn steady(Json(order): Json<Order>, State(seen): State<Seen>) {
    tokio::time::sleep(Duration::from_millis(2)).await;
    seen.add(order.id).await;
}

#[tokio::test]
async fn a_graceful_stop_mid_stream_then_a_new_service_loses_nothing() {
    let h = start().await;
    let stream = orders_stream(&h.client).await;
    const N: u64 = 300;
    for id in 0..N {
        h.client.publish("orders.eu.created", format!(r#"{{"id":{id}}}"#).into()).await.unwrap();
    }
    let seen = Seen::default();
    let first =
        spawn(NatsService::new(h.server.connect().await.unwrap()).state(seen.clone()).handler(steady)).await;
    seen.wait_distinct(100).await;
    first.stop().await.unwrap();
    let after_stop = seen.ids.lock().await.len();
    assert!(after_stop < N as usize, "stopped mid-stream");

    let second =
        spawn(NatsService::new(h.server.connect().await.unwrap()).state(seen.clone()).handler(steady)).await;
    seen.wait_distinct(N as usize).await;
    second.stop().await.unwrap();

    let ids = seen.ids.lock().await;
    assert_eq!(ids.len() as u64, N, "every id processed");
    let twice = ids.values().filter(|n| **n > 1).count();
    assert_eq!(twice, 0, "in-flight handlers finished and acked before the stop: no duplicates");
    let info = stream.clone().consumer_info("steady").await.unwrap().clone();
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0));
}

#[jetstream_consumer(stream = "DURABLE", durable = "survivor", ack_wait = "2s", concurrency = 4)]
async fn survivor(Json(order): Json<Order>, State(seen): State<Seen>) {
    tokio::time::sleep(Duration::from_millis(5)).await;
    seen.add(order.id).await;
}

#[tokio::test]
async fn a_server_restart_mid_stream_loses_nothing() {
    let mut h = start().await;
    jetstream::new(h.client.clone())
        .create_stream(stream::Config {
            name: "DURABLE".into(),
            subjects: vec!["durable.>".into()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .unwrap();
    const N: u64 = 200;
    let publisher = jetstream::new(h.client.clone());
    for id in 0..N {
        publisher.publish("durable.orders", format!(r#"{{"id":{id}}}"#).into()).await.unwrap().await.unwrap();
    }
    let seen = Seen::default();
    let running =
        spawn(NatsService::new(h.server.connect().await.unwrap()).state(seen.clone()).handler(survivor))
            .await;
    seen.wait_distinct(40).await;

    h.server.restart().unwrap();
    seen.wait_distinct(N as usize).await;
    assert!(!running.is_finished(), "the service rode out the restart");
    running.stop().await.unwrap();
    assert_eq!(seen.ids.lock().await.len() as u64, N);
}

#[jetstream_consumer(stream = "ORDERS", durable = "manual", ack = "confirmed", settle = "event")]
async fn manual(
    Json(order): Json<Order>,
    acker: nats_otel_runtime::Acker,
    State(seen): State<Seen>,
) -> Result<(), async_nats::Error> {
    seen.add(order.id).await;
    if order.id % 2 == 0 { acker.ack().await } else { acker.term().await }
}

#[tokio::test]
async fn a_handler_taking_an_acker_settles_itself_and_settle_events_replace_spans() {
    let h = start().await;
    let stream = orders_stream(&h.client).await;
    let seen = Seen::default();
    let running = spawn(NatsService::new(h.client.clone()).state(seen.clone()).handler(manual)).await;
    for id in 0..4 {
        h.client.publish("orders.eu.created", format!(r#"{{"id":{id}}}"#).into()).await.unwrap();
    }
    let spans = h.recorder.wait_for(|s| count(s, "process ORDERS") == 4).await;
    assert_eq!(count(&spans, "ack ORDERS") + count(&spans, "term ORDERS"), 0, "settlements are events");
    let mut outcomes: Vec<_> = named(&spans, "process ORDERS")
        .iter()
        .map(|p| attr_str(p, "messaging.nats.jetstream.ack").unwrap())
        .collect();
    outcomes.sort();
    assert_eq!(outcomes, ["ack", "ack", "term", "term"]);
    assert!(
        named(&spans, "process ORDERS").iter().all(|p| p.events.events.iter().any(|e| e.name == "settle"))
    );
    let info = stream.clone().consumer_info("manual").await.unwrap().clone();
    assert_eq!((info.ack_floor.stream_sequence, info.num_ack_pending, info.num_redelivered), (4, 0, 0));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_consumer_deleted_while_running_ends_run_until_with_a_clear_error() {
    let h = start().await;
    let stream = orders_stream(&h.client).await;
    let seen = Seen::default();
    let running = spawn(NatsService::new(h.client.clone()).state(seen.clone()).handler(steady)).await;
    stream.delete_consumer("steady").await.unwrap();
    let err = within("run_until ends", running.join()).await.unwrap_err();
    assert_eq!(err.kind(), ServeErrorKind::ConsumerDeleted, "{err}");
    assert!(err.to_string().contains("steady"), "{err}");
}

#[tokio::test]
async fn publishing_to_a_stream_records_the_ack_and_deduplicates() {
    use nats_otel_runtime::StreamPublishErrorKind;
    use nats_otel_runtime::publisher::StreamPublish;
    let h = start().await;
    orders_stream(&h.client).await;
    let publisher = Publisher::new(h.client.clone());

    let first = publisher
        .publish_to_stream_with("orders.eu.created", StreamPublish::new().message_id("o-1"), "{}")
        .await
        .unwrap();
    let again = publisher
        .publish_to_stream_with("orders.eu.created", StreamPublish::new().message_id("o-1"), "{}")
        .await
        .unwrap();
    assert_eq!((first.sequence, first.duplicate), (1, false));
    assert!(again.duplicate, "same Nats-Msg-Id within the window is stored once");
    let derived = StreamPublish::new().derived_message_id();
    let a = publisher.publish_to_stream_with("orders.us.created", derived.clone(), "same").await.unwrap();
    let b = publisher.publish_to_stream_with("orders.us.created", derived, "same").await.unwrap();
    assert!(!a.duplicate && b.duplicate && a.sequence == b.sequence);

    let missing = publisher.publish_to_stream("nowhere.at.all", "x").await.unwrap_err();
    assert_eq!(missing.kind(), StreamPublishErrorKind::StreamNotFound);
    let wrong = publisher
        .publish_to_stream_with("orders.eu.created", StreamPublish::new().expected_stream("PAYMENTS"), "x")
        .await
        .unwrap_err();
    assert_eq!(wrong.kind(), StreamPublishErrorKind::WrongExpectedStream, "{wrong}");

    let spans = h.recorder.wait_for(|s| count(s, "send orders.eu.created") == 3).await;
    let sent = named(&spans, "send orders.eu.created");
    let acked = sent.iter().find(|s| attr_i64(s, "messaging.nats.jetstream.sequence") == Some(1)).unwrap();
    assert_eq!(acked.span_kind, SpanKind::Producer);
    assert_eq!(attr_str(acked, "messaging.nats.jetstream.stream").as_deref(), Some("ORDERS"));
    assert_eq!(attr_str(acked, "messaging.message.id").as_deref(), Some("o-1"));
    assert!(matches!(
        attr(acked, "messaging.nats.jetstream.duplicate"),
        Some(opentelemetry::Value::Bool(false))
    ));
    let failed = one(&spans, "send nowhere.at.all");
    assert!(matches!(failed.status, Status::Error { .. }));
    assert_eq!(attr_str(failed, "error.type").as_deref(), Some("stream_not_found"));
}

#[jetstream_consumer(
    stream = "ORDERS",
    durable = "poisoned",
    ack = "confirmed",
    dead_letter = "dead.core",
    dead_letter_route = "core"
)]
async fn poisoned(Json(_order): Json<Order>) {}

#[nats_subscribe("dead.core")]
async fn dead_core(headers: HeaderMap, State(seen): State<Seen>) {
    let sequence = headers.get(dlq::STREAM_SEQUENCE).map(|v| v.as_str().parse().unwrap()).unwrap();
    seen.add(sequence).await;
}

#[tokio::test]
async fn dead_letters_reach_core_subscribers_on_the_core_route() {
    // The core route is chosen explicitly: a letter published there is not
    // confirmed by anything, so the message is termed once it is sent.
    let h = start().await;
    let stream = orders_stream(&h.client).await;
    let seen = Seen::default();
    let running =
        spawn(NatsService::new(h.client.clone()).state(seen.clone()).handler(poisoned).handler(dead_core))
            .await;
    h.client.publish("orders.eu.created", "poison".into()).await.unwrap();
    seen.wait_distinct(1).await;
    h.recorder.wait_for(|s| count(s, "term ORDERS") == 1).await;
    let info = stream.clone().consumer_info("poisoned").await.unwrap().clone();
    assert_eq!((info.ack_floor.stream_sequence, info.num_redelivered), (1, 0));
    assert_eq!(seen.ids.lock().await.get(&1), Some(&1), "one dead letter for stream sequence 1");
    running.stop().await.unwrap();
}

#[jetstream_consumer(stream = "ORDERS", durable = "panicky", ack = "confirmed", max_deliver = 3, backoff = ["1s"])]
async fn panics_once(Json(order): Json<Order>, info: JetStreamInfo, State(seen): State<Seen>) {
    if info.delivered == 1 {
        panic!("boom on first delivery");
    }
    seen.add(order.id).await;
}

#[tokio::test]
async fn a_panic_is_nakked_with_the_backoff_delay_and_the_loop_goes_on() {
    let h = start().await;
    let stream = orders_stream(&h.client).await;
    let seen = Seen::default();
    let running = spawn(NatsService::new(h.client.clone()).state(seen.clone()).handler(panics_once)).await;
    for id in 0..3 {
        h.client.publish("orders.eu.created", format!(r#"{{"id":{id}}}"#).into()).await.unwrap();
    }
    seen.wait_distinct(3).await;
    let spans = h.recorder.wait_for(|s| count(s, "ack ORDERS") == 3).await;
    assert_eq!(count(&spans, "nak ORDERS"), 3, "each panic nak'ed once");
    let panicked: Vec<_> = named(&spans, "process ORDERS")
        .into_iter()
        .filter(|p| attr_str(p, "error.type").as_deref() == Some("panic"))
        .collect();
    assert_eq!(panicked.len(), 3);
    assert!(panicked.iter().all(|p| attr_str(p, "messaging.nats.jetstream.ack").as_deref() == Some("nak")));
    assert!(!running.is_finished());
    let info = stream.clone().consumer_info("panicky").await.unwrap().clone();
    assert_eq!((info.num_ack_pending, info.num_pending), (0, 0));
    running.stop().await.unwrap();
}

#[jetstream_consumer(stream = "ORDERS", durable = "slow_backoff", ack = "confirmed", max_deliver = 3, backoff = ["2s", "500ms"])]
async fn slow_retry(
    Json(order): Json<Order>,
    info: JetStreamInfo,
    State(log): State<Log>,
) -> Result<(), Flaky> {
    log.record(order.id, &info).await;
    if info.delivered == 1 {
        return Err(Flaky);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Ok(())
}

#[tokio::test]
async fn heartbeats_follow_the_ack_timeout_of_each_delivery() {
    // With `backoff`, nats-server times out delivery n after backoff[n-1]; it
    // creates the consumer with ack_wait = backoff[0] (2s), but the retry here
    // times out after 500ms: heartbeats must keep to that, or the slow retry is
    // redelivered while it runs.
    let h = start().await;
    let stream = orders_stream(&h.client).await;
    let log = Log::default();
    let running = spawn(NatsService::new(h.client.clone()).state(log.clone()).handler(slow_retry)).await;
    h.client.publish("orders.eu.created", r#"{"id":5}"#.into()).await.unwrap();
    h.recorder.wait_for(|s| count(s, "ack ORDERS") == 1).await;
    let deliveries: Vec<i64> = log.calls_for(5).await.iter().map(|c| c.0).collect();
    assert_eq!(deliveries, [1, 2], "the slow retry ran 3x its ack timeout and was not redelivered");
    let info = stream.clone().consumer_info("slow_backoff").await.unwrap().clone();
    assert_eq!(info.num_ack_pending, 0);
    running.stop().await.unwrap();
}

/// The delivery numbers on process spans are the server's: with a backlog of
/// four published before the consumer starts, the consumer sequences are 1 to 4
/// and each delivery counts the messages still behind it (3, 2, 1, 0).
#[tokio::test]
async fn delivery_sequences_and_pending_counts_are_the_servers() {
    let h = start().await;
    let _stream = orders_stream(&h.client).await;
    let publisher = Publisher::new(h.client.clone());
    for id in 1..=4 {
        publisher
            .publish_to_stream("orders.eu.created", serde_json::to_vec(&Order { id }).unwrap())
            .await
            .unwrap();
    }
    let log = Log::default();
    let running = spawn(NatsService::new(h.client.clone()).state(log.clone()).handler(bill)).await;
    let spans = h.recorder.wait_for(|s| count(s, "ack orders.*.created") == 4).await;

    let mut deliveries: Vec<(i64, i64, i64, i64)> = named(&spans, "process orders.*.created")
        .into_iter()
        .map(|p| {
            (
                attr_i64(p, "messaging.nats.jetstream.sequence").unwrap(),
                attr_i64(p, "messaging.nats.jetstream.consumer_sequence").unwrap(),
                attr_i64(p, "messaging.nats.jetstream.num_pending").unwrap(),
                attr_i64(p, "messaging.nats.jetstream.num_delivered").unwrap(),
            )
        })
        .collect();
    deliveries.sort();
    assert_eq!(deliveries, [(1, 1, 3, 1), (2, 2, 2, 1), (3, 3, 1, 1), (4, 4, 0, 1)]);
    running.stop().await.unwrap();
}
