//! Metrics after a known sequence of publishes, successes, failures, retries and
//! dead letters, read from OpenTelemetry's in-memory metric exporter. A binary of
//! its own: the meter provider is process-global.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use async_nats::jetstream::{self, stream};
use common::*;
use nats_otel_runtime::metrics::DURATION_BUCKETS;
use nats_otel_runtime::prelude::*;

#[derive(Debug)]
struct Nope;
impl std::fmt::Display for Nope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("nope")
    }
}
impl HandlerError for Nope {
    fn code(&self) -> u16 {
        409
    }
    fn error_type(&self) -> std::borrow::Cow<'static, str> {
        "nope".into()
    }
}

#[nats_subscribe("work.*", queue = "workers")]
async fn work(subject: Subject) -> Result<(), Nope> {
    if subject.ends_with(".bad") { Err(Nope) } else { Ok(()) }
}

#[jetstream_consumer(stream = "JOBS", durable = "runner", ack = "confirmed", max_deliver = 3, backoff = ["1s"], dead_letter = "dead.jobs")]
async fn run_job(body: String, info: JetStreamInfo) -> Result<(), Nope> {
    if body == "flaky" && info.delivered == 1 { Err(Nope) } else { Ok(()) }
}

#[tokio::test]
async fn metrics_follow_semconv_and_count_what_happened() {
    let (exporter, provider) = install_metrics();

    let h = start().await;
    jetstream::new(h.client.clone())
        .create_stream(stream::Config {
            name: "JOBS".into(),
            subjects: vec!["jobs.>".into()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
    // Letters are stored (the message is termed only once its letter is).
    jetstream::new(h.client.clone())
        .create_stream(stream::Config {
            name: "DEAD".into(),
            subjects: vec!["dead.>".into()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
    let running = spawn(NatsService::new(h.client.clone()).handler(work).handler(run_job)).await;
    let publisher = Publisher::new(h.client.clone());

    // Core: three requests succeed, one fails.
    for subject in ["work.a", "work.b", "work.c"] {
        publisher.request(subject, "x").await.unwrap();
    }
    publisher.request("work.bad", "x").await.unwrap_err();
    // JetStream: one ok, one retried once then ok, one poison (not UTF-8) dead-lettered.
    for body in [&b"fine"[..], b"flaky", &[0xff]] {
        publisher.publish_to_stream("jobs.run", bytes::Bytes::copy_from_slice(body)).await.unwrap();
    }
    h.recorder
        .wait_for(|s| count(s, "ack JOBS") == 2 && count(s, "nak JOBS") == 1 && count(s, "term JOBS") == 1)
        .await;
    running.stop().await.unwrap();
    provider.force_flush().unwrap();
    let points = points(&exporter);

    // Histograms: unit and the semconv bucket boundaries.
    for name in ["messaging.process.duration", "messaging.client.operation.duration"] {
        let point = points.iter().find(|p| p.metric == name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(point.unit, "s");
        assert_eq!(point.bounds, DURATION_BUCKETS.to_vec(), "{name} buckets");
    }

    // Core endpoint: pattern as template, never the concrete subjects.
    let core = |p: &Point| p.attr("messaging.destination.template") == Some("work.*");
    assert_eq!(
        total(&points, "messaging.process.duration", |p| core(p) && p.attr("error.type").is_none()),
        3.0
    );
    assert_eq!(
        total(&points, "messaging.process.duration", |p| core(p) && p.attr("error.type") == Some("nope")),
        1.0
    );
    assert_eq!(total(&points, "messaging.client.consumed.messages", core), 4.0);
    let sample = points.iter().find(|p| p.metric == "messaging.process.duration" && core(p)).unwrap();
    assert_eq!(sample.attr("messaging.system"), Some("nats"));
    assert_eq!(sample.attr("messaging.operation.name"), Some("process"));
    assert_eq!(sample.attr("messaging.consumer.group.name"), Some("workers"));
    assert_eq!(sample.attr("server.address"), Some("127.0.0.1"));
    assert!(sample.attr("server.port").is_some());
    assert!(
        points.iter().all(|p| p
            .attributes
            .iter()
            .all(|(_, v)| !["work.a", "work.b", "work.bad", "jobs.run"].contains(&v.as_str()))),
        "no raw subject in any metric attribute"
    );

    // JetStream endpoint: deliveries, redeliveries, settlements by outcome.
    let jobs = |p: &Point| p.attr("messaging.destination.name") == Some("JOBS");
    assert_eq!(
        total(&points, "messaging.client.consumed.messages", jobs),
        4.0,
        "fine + flaky twice + poison once"
    );
    assert_eq!(total(&points, "messaging.nats.jetstream.redeliveries", jobs), 1.0);
    let outcome =
        |o: &'static str| move |p: &Point| jobs(p) && p.attr("messaging.nats.jetstream.ack") == Some(o);
    assert_eq!(total(&points, "messaging.nats.jetstream.settlements", outcome("ack")), 2.0);
    assert_eq!(total(&points, "messaging.nats.jetstream.settlements", outcome("nak")), 1.0);
    assert_eq!(total(&points, "messaging.nats.jetstream.settlements", outcome("dead_letter")), 1.0);
    let settle = |op: &'static str| {
        move |p: &Point| {
            jobs(p)
                && p.attr("messaging.operation.type") == Some("settle")
                && p.attr("messaging.operation.name") == Some(op)
        }
    };
    assert_eq!(total(&points, "messaging.client.operation.duration", settle("ack")), 2.0);
    assert_eq!(total(&points, "messaging.client.operation.duration", settle("nak")), 1.0);
    assert_eq!(total(&points, "messaging.client.operation.duration", settle("term")), 1.0);
    let runner = points.iter().find(|p| p.metric == "messaging.client.consumed.messages" && jobs(p)).unwrap();
    assert_eq!(runner.attr("messaging.destination.subscription.name"), Some("runner"));
    assert_eq!(runner.attr("messaging.consumer.group.name"), Some("runner"));
    // The backlog as of the last delivery (the retried message, delivered last).
    assert_eq!(reported(&points, "messaging.nats.jetstream.consumer.pending", jobs), 0.0);

    // Publisher: 4 requests and 3 stream publishes; bytes; one failed request.
    let send = |p: &Point| p.attr("messaging.operation.name") == Some("send");
    let request = |p: &Point| p.attr("messaging.operation.name") == Some("request");
    assert_eq!(total(&points, "messaging.client.sent.messages", request), 4.0);
    assert_eq!(
        total(&points, "messaging.client.sent.messages", |p| request(p)
            && p.attr("error.type") == Some("409")),
        1.0
    );
    assert_eq!(total(&points, "messaging.client.sent.messages", send), 3.0);
    assert_eq!(total(&points, "messaging.nats.sent.bytes", send), ("fine".len() + "flaky".len() + 1) as f64);
    assert_eq!(total(&points, "messaging.nats.received.bytes", core), 4.0);

    // Nothing left in flight, for each endpoint; no reconnects (the failover
    // test in cluster.rs counts one).
    assert_eq!(reported(&points, "messaging.nats.handlers.in_flight", core), 0.0);
    assert_eq!(reported(&points, "messaging.nats.handlers.in_flight", jobs), 0.0);
    assert_eq!(reported(&points, "messaging.nats.client.reconnects", |_| true), 0.0);
}
