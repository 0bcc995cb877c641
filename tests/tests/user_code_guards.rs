//! User code that panics anywhere in a message's handling — the reply's
//! `Serialize`, the error's `Display`, `code`, `retry`, `error_type` — is answered
//! and recorded like a handler panic, and the service goes on; replies the server
//! would refuse are answered with a service error; bad trace fields in an envelope
//! give a root span, not a rejected message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::borrow::Cow;
use std::sync::Arc;

use async_nats::jetstream::{self, stream};
use common::*;
use nats_otel_runtime::prelude::*;
use nats_otel_runtime::testing::{NatsServer, SpanRecorder};
use nats_otel_runtime::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE, Reply, Retry};
use opentelemetry::trace::{SpanId, Status};
use tokio::sync::Mutex;

/// A request that fails rather than waits for the client's default timeout when
/// no reply comes: a regression shows up as a failure, not a hang.
async fn request(client: &async_nats::Client, subject: &str, payload: impl Into<bytes::Bytes>) -> Message {
    within_secs(5, &format!("a reply on {subject}"), client.request(subject.to_owned(), payload.into()))
        .await
        .unwrap_or_else(|e| panic!("request on {subject}: {e}"))
}

fn service_error(reply: &Message) -> (String, String) {
    let headers = reply.headers.as_ref().expect("service error headers");
    (
        headers.get(NATS_SERVICE_ERROR_CODE).expect("a code").as_str().to_owned(),
        headers.get(NATS_SERVICE_ERROR).expect("a description").as_str().to_owned(),
    )
}

/// Serialising it panics.
#[derive(Debug)]
struct Exploding;

impl Serialize for Exploding {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("serialize exploded")
    }
}

#[nats_subscribe("guards.serialize")]
async fn exploding_reply(text: String) -> Json<Option<Exploding>> {
    Json((text == "boom").then_some(Exploding))
}

#[tokio::test]
async fn a_json_reply_whose_serialize_panics_is_answered_with_500_and_the_service_goes_on() {
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(exploding_reply)).await;

    let reply = request(&h.client, "guards.serialize", "boom").await;
    let (code, description) = service_error(&reply);
    assert_eq!(code, "500");
    assert!(description.contains("serialize exploded"), "{description}");

    let ok = request(&h.client, "guards.serialize", "fine").await;
    assert!(ok.headers.is_none());
    assert_eq!(&ok.payload[..], b"null");

    let spans = h.recorder.wait_for(|s| count(s, "process guards.serialize") == 2).await;
    let failed: Vec<_> = named(&spans, "process guards.serialize")
        .into_iter()
        .filter(|s| matches!(s.status, Status::Error { .. }))
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(attr_str(failed[0], "error.type").as_deref(), Some("panic"));
    assert!(!running.is_finished());
    running.stop().await.unwrap();
}

/// A handler error whose chosen method panics.
#[derive(Debug, Clone, Copy)]
enum Bomb {
    Display,
    Code,
    Retry,
    ErrorType,
}

impl std::fmt::Display for Bomb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Bomb::Display = self {
            panic!("display exploded");
        }
        f.write_str("bomb")
    }
}

impl HandlerError for Bomb {
    fn code(&self) -> u16 {
        if let Bomb::Code = self {
            panic!("code exploded");
        }
        418
    }

    fn retry(&self) -> Retry {
        if let Bomb::Retry = self {
            panic!("retry exploded");
        }
        Retry::Backoff
    }

    fn error_type(&self) -> Cow<'static, str> {
        if let Bomb::ErrorType = self {
            panic!("error_type exploded");
        }
        Cow::Borrowed("bomb")
    }
}

#[nats_subscribe("guards.error")]
async fn exploding_error(text: String) -> Result<&'static str, Bomb> {
    match text.as_str() {
        "display" => Err(Bomb::Display),
        "code" => Err(Bomb::Code),
        "retry" => Err(Bomb::Retry),
        "error_type" => Err(Bomb::ErrorType),
        _ => Ok("fine"),
    }
}

#[tokio::test]
async fn handler_errors_whose_display_code_retry_or_error_type_panic_are_answered_with_500_and_the_service_goes_on()
 {
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(exploding_error)).await;

    let methods = ["display", "code", "retry", "error_type"];
    for method in methods {
        let reply = request(&h.client, "guards.error", method).await;
        let (code, description) = service_error(&reply);
        assert_eq!(code, "500", "{method}");
        assert!(description.contains(&format!("{method} exploded")), "{method}: {description}");
        // The next request is served.
        let ok = request(&h.client, "guards.error", "ok").await;
        assert!(ok.headers.is_none(), "{method}");
        assert_eq!(&ok.payload[..], b"fine");
    }

    let spans = h.recorder.wait_for(|s| count(s, "process guards.error") == 2 * methods.len()).await;
    let failed: Vec<_> = named(&spans, "process guards.error")
        .into_iter()
        .filter(|s| matches!(s.status, Status::Error { .. }))
        .collect();
    assert_eq!(failed.len(), methods.len());
    assert!(failed.iter().all(|s| attr_str(s, "error.type").as_deref() == Some("panic")));
    assert!(!running.is_finished());
    running.stop().await.unwrap();
}

/// An error whose description is `len` bytes: an `x`, then two-byte characters, so
/// a cut at an even byte count falls inside one.
#[derive(Debug)]
struct Verbose(usize);

impl std::fmt::Display for Verbose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("x")?;
        for _ in 0..(self.0 - 1) / 2 {
            f.write_str("é")?;
        }
        Ok(())
    }
}

impl HandlerError for Verbose {
    fn code(&self) -> u16 {
        422
    }
}

#[nats_subscribe("guards.big.*")]
async fn big(subject: Subject, size: String) -> Result<Reply, Verbose> {
    let size: usize = size.parse().unwrap_or(0);
    match subject.as_str() {
        "guards.big.reply" => Ok(Reply::new("r".repeat(size))),
        "guards.big.headers" => {
            let mut headers = HeaderMap::new();
            headers.insert("Big", "h".repeat(size).as_str());
            Ok(Reply::new("small").with_headers(headers))
        }
        _ => Err(Verbose(size)),
    }
}

#[tokio::test]
async fn a_reply_over_the_servers_max_payload_is_answered_with_a_500_service_error_and_recorded() {
    let (exporter, provider) = install_metrics();
    let recorder = SpanRecorder::install();
    let server = NatsServer::with_config("max_payload: 4096").unwrap();
    let client = server.connect().await.unwrap();
    assert_eq!(client.server_info().max_payload, 4096);
    let running = spawn(NatsService::new(client.clone()).handler(big)).await;

    // The payload alone, and headers pushing a small payload over.
    for (subject, what) in [("guards.big.reply", "reply"), ("guards.big.headers", "reply")] {
        let reply = request(&client, subject, "10000").await;
        let (code, description) = service_error(&reply);
        assert_eq!(code, "500", "{subject}");
        assert!(
            description.contains(what) && description.contains("max_payload") && description.contains("4096"),
            "{subject}: {description}"
        );
        assert!(reply.payload.is_empty());
    }
    // A reply that fits is sent as it is.
    let ok = request(&client, "guards.big.reply", "4000").await;
    assert!(ok.headers.is_none());
    assert_eq!(ok.payload.len(), 4000);

    let spans = recorder.wait_for(|s| count(s, "process guards.big.*") == 3).await;
    let too_large: Vec<_> = named(&spans, "process guards.big.*")
        .into_iter()
        .filter(|s| attr_str(s, "error.type").as_deref() == Some("max_payload_exceeded"))
        .collect();
    assert_eq!(too_large.len(), 2);
    assert!(too_large.iter().all(|s| matches!(s.status, Status::Error { .. })));

    running.stop().await.unwrap();
    provider.force_flush().unwrap();
    let points = points(&exporter);
    let big = |p: &Point| p.attr("messaging.destination.template") == Some("guards.big.*");
    assert_eq!(
        total(&points, "messaging.process.duration", |p| big(p)
            && p.attr("error.type") == Some("max_payload_exceeded")),
        2.0
    );
    assert_eq!(
        total(&points, "messaging.process.duration", |p| big(p) && p.attr("error.type").is_none()),
        1.0
    );
}

#[tokio::test]
async fn an_enormous_error_description_is_cut_in_the_header_and_the_error_reply_arrives() {
    let recorder = SpanRecorder::install();
    let server = NatsServer::with_config("max_payload: 4096").unwrap();
    let client = server.connect().await.unwrap();
    let running = spawn(NatsService::new(client.clone()).handler(big)).await;

    for size in [100_000, 4096, 1025] {
        let reply = request(&client, "guards.big.error", size.to_string()).await;
        let (code, description) = service_error(&reply);
        assert_eq!(code, "422", "the error's own code is kept");
        assert!(description.len() <= 1024, "{} bytes", description.len());
        assert!(description.len() >= 1000, "cut, not dropped: {} bytes", description.len());
        assert!(description.starts_with("xéé"), "{description}");
        assert!(description[1..].chars().all(|c| c == 'é'), "cut on a character boundary");
    }
    // A short one is untouched.
    let reply = request(&client, "guards.big.error", "5").await;
    assert_eq!(service_error(&reply).1, "xéé");

    // The span keeps the error as it was.
    let spans = recorder.wait_for(|s| count(s, "process guards.big.*") == 4).await;
    assert!(named(&spans, "process guards.big.*").iter().all(|s| matches!(s.status, Status::Error { .. })));
    running.stop().await.unwrap();
}

#[derive(Debug, Deserialize)]
struct Legacy {
    n: u32,
}

#[nats_subscribe("guards.envelope")]
async fn on_envelope(envelope: Envelope<Legacy>) -> Json<u32> {
    Json(envelope.data.n)
}

#[tokio::test]
async fn envelopes_with_malformed_trace_fields_are_handled_normally_with_a_root_span() {
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(on_envelope)).await;
    let valid = r#""00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01""#;
    let huge = format!(r#""{}""#, "x".repeat(60_000));
    let deep = format!("{}{}", "[".repeat(2_000), "]".repeat(2_000));
    let roots = [
        r#""tracestate": 7"#.to_owned(),
        r#""traceparent": 12"#.to_owned(),
        r#""traceparent": "garbage", "tracestate": "k=v""#.to_owned(),
        r#""traceparent": null, "tracestate": null"#.to_owned(),
        r#""traceparent": true, "tracestate": 1.5"#.to_owned(),
        r#""traceparent": ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]"#.to_owned(),
        r#""traceparent": {"a": [1, {"b": null}]}, "tracestate": []"#.to_owned(),
        format!(r#""traceparent": {huge}, "tracestate": {huge}"#),
        format!(r#""traceparent": {deep}, "tracestate": {deep}"#),
    ];
    // A bad tracestate does not cost a valid traceparent its trace; repeated
    // fields take the first string.
    let parented = [
        format!(r#""traceparent": {valid}, "tracestate": 7"#),
        format!(r#""traceparent": {valid}, "traceparent": 5"#),
    ];
    let cases: Vec<&String> = roots.iter().chain(&parented).collect();
    for (n, fields) in cases.iter().enumerate() {
        let payload = format!(r#"{{{fields}, "data": {{"n": {n}}}}}"#);
        let reply = request(&h.client, "guards.envelope", payload).await;
        assert!(reply.headers.is_none(), "case {n} ({}…) answered normally", &fields[..fields.len().min(40)]);
        assert_eq!(reply.payload, n.to_string().as_bytes());
    }

    let spans = h.recorder.wait_for(|s| count(s, "process guards.envelope") == cases.len()).await;
    let processes = named(&spans, "process guards.envelope");
    assert!(processes.iter().all(|s| s.status == Status::Unset));
    let root = processes.iter().filter(|s| s.parent_span_id == SpanId::INVALID).count();
    assert_eq!(root, roots.len(), "every malformed trace field gives a root span");
    let continued = processes.iter().filter(|s| s.parent_span_id.to_string() == "00f067aa0ba902b7").count();
    assert_eq!(continued, parented.len());
    running.stop().await.unwrap();
}

/// Deliveries each message saw, by id.
#[derive(Clone, Default)]
struct Deliveries(Arc<Mutex<Vec<(u64, i64)>>>);

#[derive(Debug, Deserialize)]
struct Job {
    id: u64,
}

// A backoff of 1 s: the server also takes it as the ack timeout of the
// redelivery, which a loaded machine can outlast at 200 ms (seen in a CI run).
#[jetstream_consumer(stream = "GUARDS", durable = "exploding", ack = "confirmed", max_deliver = 3, backoff = ["1s"])]
async fn explodes_once(
    Json(job): Json<Job>,
    info: JetStreamInfo,
    State(deliveries): State<Deliveries>,
) -> Result<(), Bomb> {
    deliveries.0.lock().await.push((job.id, info.delivered));
    if info.delivered == 1 { Err(Bomb::Display) } else { Ok(()) }
}

#[tokio::test]
async fn a_consumer_whose_error_panics_when_displayed_naks_and_the_redelivery_is_acked() {
    let h = start().await;
    let js = jetstream::new(h.client.clone());
    let stream = js
        .create_stream(stream::Config {
            name: "GUARDS".into(),
            subjects: vec!["guards.jobs.>".into()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
    let deliveries = Deliveries::default();
    let running =
        spawn(NatsService::new(h.client.clone()).state(deliveries.clone()).handler(explodes_once)).await;
    for id in 0..3 {
        // Stored before the consumer's state is read.
        js.publish("guards.jobs.run", format!(r#"{{"id":{id}}}"#).into()).await.unwrap().await.unwrap();
    }

    let info = settled(&stream, "exploding", 30).await;
    assert_eq!(info.ack_floor.stream_sequence, 3, "every message acked");
    assert!(!running.is_finished(), "the service is still running");
    let mut seen = deliveries.0.lock().await.clone();
    seen.sort_unstable();
    assert_eq!(seen, [(0, 1), (0, 2), (1, 1), (1, 2), (2, 1), (2, 2)]);

    let spans = h.recorder.wait_for(|s| count(s, "ack GUARDS") == 3).await;
    assert_eq!(count(&spans, "nak GUARDS"), 3, "each panic nak'ed");
    let panicked: Vec<_> = named(&spans, "process GUARDS")
        .into_iter()
        .filter(|p| attr_str(p, "error.type").as_deref() == Some("panic"))
        .collect();
    assert_eq!(panicked.len(), 3);
    assert!(panicked.iter().all(|p| attr_str(p, "messaging.nats.jetstream.ack").as_deref() == Some("nak")));
    running.stop().await.unwrap();
}

/// Panics as the `process` span of `guards.telemetry.start` starts, or as that of
/// `guards.telemetry.end` ends: span processors (like samplers and propagators)
/// are the user's code, called for every message.
#[derive(Debug)]
struct ExplodingProcessor;

fn destination(attributes: &[opentelemetry::KeyValue]) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key.as_str() == "messaging.destination.name")
        .map(|kv| kv.value.as_str().into_owned())
}

impl opentelemetry_sdk::trace::SpanProcessor for ExplodingProcessor {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, _: &opentelemetry::Context) {
        let data = span.exported_data();
        if data.and_then(|d| destination(&d.attributes)).as_deref() == Some("guards.telemetry.start") {
            panic!("span processor exploded on start");
        }
    }

    fn on_end(&self, span: opentelemetry_sdk::trace::SpanData) {
        if destination(&span.attributes).as_deref() == Some("guards.telemetry.end") {
            panic!("span processor exploded on end");
        }
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: std::time::Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

#[nats_subscribe("guards.telemetry.*")]
async fn observed() -> &'static str {
    "handled"
}

#[tokio::test]
async fn a_span_processor_that_panics_costs_the_message_its_span_not_the_service() {
    // Its own global provider, with the exploding processor (no recorder).
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(ExplodingProcessor)
        .build();
    opentelemetry::global::set_tracer_provider(provider);
    let server = NatsServer::start().unwrap();
    let client = server.connect().await.unwrap();
    let running = spawn(NatsService::new(client.clone()).handler(observed)).await;

    for subject in
        ["guards.telemetry.start", "guards.telemetry.end", "guards.telemetry.end", "guards.telemetry.ok"]
    {
        let reply = request(&client, subject, "").await;
        assert!(reply.headers.is_none(), "{subject}");
        assert_eq!(&reply.payload[..], b"handled", "{subject}");
    }
    assert!(!running.is_finished(), "the service is still running");
    running.stop().await.unwrap();

    // The same on a JetStream consumer: every message acked once, the consumer
    // still serving.
    let js = async_nats::jetstream::new(client.clone());
    let stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "GUARDS".into(),
            subjects: vec!["guards.telemetry.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let consumer = nats_otel_runtime::JetStreamConsumer::new("GUARDS", "observed")
        .ack(nats_otel_runtime::AckMode::Confirmed);
    let running = spawn(NatsService::new(client.clone()).consume(consumer, observed_js)).await;
    for subject in
        ["guards.telemetry.start", "guards.telemetry.end", "guards.telemetry.end", "guards.telemetry.ok"]
    {
        js.publish(subject, "".into()).await.unwrap().await.unwrap();
    }
    let info = settled(&stream, "observed", 30).await;
    assert_eq!((info.ack_floor.stream_sequence, info.num_redelivered), (4, 0), "each acked once");
    assert!(!running.is_finished(), "the consumer is still serving");
    running.stop().await.unwrap();
}

async fn observed_js() {}
