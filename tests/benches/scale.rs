//! Memory against the number of distinct subjects (issue 21, "scale"): the
//! process's resident set (`VmRSS`) after 0, 1/5, 1/2 and all of
//! `NATS_OTEL_SCALE_MESSAGES` (500,000) messages, each on a subject of its own,
//! with telemetry on: SDK tracer (AlwaysOn, batch processor into a no-op
//! exporter) and SDK meter (periodic reader into a no-op exporter, cumulative),
//! both flushed at each checkpoint so that every span is exported and every
//! metric attribute set the meter holds is collected before RSS is read.
//!
//! ```sh
//! cargo bench -p tests --bench scale
//! NATS_OTEL_SCALE_MESSAGES=20000 cargo bench -p tests --bench scale   # as CI runs it
//! NATS_OTEL_SCALE_CASES=core cargo bench -p tests --bench scale       # one case
//! ```
//!
//! Cases (see BENCHMARKS.md), each in a process of its own (the bench runs
//! itself again) with a nats-server of its own, so each row's RSS is that
//! case's alone:
//! - `core`: one `#[nats_subscribe("scale.>")]` handler, messages on `scale.<n>`;
//! - `jetstream`: one `#[jetstream_consumer]` on a memory, work-queue stream
//!   capturing `scale.>` (the server deletes what is acked: its own memory is
//!   not the question);
//! - `many`: one service with 200 handlers made with the builder: 180 core
//!   subscriptions `many.core.<i>.>` and 20 JetStream consumers `many.js.<i>.>`;
//!   message `n` goes to handler `n % 200`, on `many.{core,js}.<n % 200>.<n>`.
//!
//! The same process publishes with nats-otel's `Publisher` (a traced `send`
//! span and a `traceparent` a message; JetStream publishes wait for their
//! acks), at most `WINDOW` messages ahead of the handlers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::stream;
use nats_otel_runtime::prelude::*;
use nats_otel_runtime::testing::{NatsServer, install_w3c_propagators};
use nats_otel_runtime::{JetStreamConsumer, Subscription};
use opentelemetry::global;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;

#[path = "common/noop.rs"]
mod noop;
use noop::{NoopMetrics, NoopSpans};

/// Messages published but not yet handled, at most.
const WINDOW: usize = 10_000;
/// Handlers in the `many` case, and how many of them are JetStream consumers.
const HANDLERS: usize = 200;
const JETSTREAM_HANDLERS: usize = 20;
const CASES: [&str; 3] = ["core", "jetstream", "many"];

// ---------------------------------------------------------------- telemetry

/// The throughput bench's providers (variant 3), installed globally.
struct Providers {
    tracer: SdkTracerProvider,
    meter: SdkMeterProvider,
}

impl Providers {
    fn install() -> Self {
        let tracer = SdkTracerProvider::builder()
            .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn)
            .with_batch_exporter(NoopSpans)
            .build();
        let meter =
            SdkMeterProvider::builder().with_reader(PeriodicReader::builder(NoopMetrics).build()).build();
        let layer = tracing_opentelemetry::layer()
            .with_tracer(tracer.tracer("bench"))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_target(false);
        tracing::dispatcher::set_global_default(tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(layer.with_filter(LevelFilter::INFO))
                .with(nats_otel_runtime::span_events::SpanEvents::new().with_filter(LevelFilter::INFO)),
        ))
        .unwrap();
        global::set_tracer_provider(tracer.clone());
        global::set_meter_provider(meter.clone());
        Self { tracer, meter }
    }

    /// Exports every queued span and collects every metric (the SDK's
    /// cumulative state, each attribute set it holds) into the no-op exporters.
    async fn flush(&self) {
        let (tracer, meter) = (self.tracer.clone(), self.meter.clone());
        tokio::task::spawn_blocking(move || {
            tracer.force_flush().unwrap();
            meter.force_flush().unwrap();
        })
        .await
        .unwrap();
    }
}

// ---------------------------------------------------------------- handlers

#[derive(Debug, Serialize, Deserialize)]
struct Reading {
    n: u64,
    sensor: String,
    celsius: f64,
}

fn payload(n: usize) -> Bytes {
    let reading = Reading { n: n as u64, sensor: format!("sensor-{:06}", n % 100_000), celsius: 21.5 };
    Bytes::from(serde_json::to_vec(&reading).unwrap())
}

/// Handled messages.
#[derive(Debug, Default)]
struct Done(AtomicUsize);

impl Done {
    fn hit(&self, reading: &Reading) {
        std::hint::black_box(reading);
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Until `target` messages are handled; panics after 60 s without progress.
    async fn wait_for(&self, target: usize) {
        let (mut last, mut since) = (self.count(), Instant::now());
        while self.count() < target {
            tokio::time::sleep(Duration::from_millis(2)).await;
            if self.count() != last {
                (last, since) = (self.count(), Instant::now());
            }
            assert!(since.elapsed() < Duration::from_secs(60), "stuck at {last} of {target} handled");
        }
    }
}

#[nats_subscribe("scale.>")]
async fn on_core(Json(reading): Json<Reading>, State(done): State<Arc<Done>>) {
    done.hit(&reading);
}

#[jetstream_consumer(stream = "SCALE", durable = "scale")]
async fn on_stream(Json(reading): Json<Reading>, State(done): State<Arc<Done>>) {
    done.hit(&reading);
}

/// The `many` case's handler, registered 200 times with the builder.
async fn on_many(Json(reading): Json<Reading>, State(done): State<Arc<Done>>) {
    done.hit(&reading);
}

/// A memory work-queue stream: acked messages are deleted.
fn work_queue(name: &str, subjects: &str) -> stream::Config {
    stream::Config {
        name: name.into(),
        subjects: vec![subjects.into()],
        storage: stream::StorageType::Memory,
        retention: stream::RetentionPolicy::WorkQueue,
        ..Default::default()
    }
}

fn service(case: &str, client: async_nats::Client, done: Arc<Done>) -> NatsService<Arc<Done>> {
    let service = NatsService::with_state(client, done).name("scale").version("0.1.0");
    match case {
        "core" => service.handler(on_core),
        "jetstream" => service.stream(work_queue("SCALE", "scale.>")).handler(on_stream),
        "many" => (0..HANDLERS).fold(service.stream(work_queue("MANY", "many.js.>")), |service, i| {
            if i < HANDLERS - JETSTREAM_HANDLERS {
                let subscription = Subscription::new(format!("many.core.{i}.>")).name(format!("core-{i}"));
                service.subscribe_with(subscription, on_many)
            } else {
                let consumer = JetStreamConsumer::new("MANY", format!("js-{i}"))
                    .filter(format!("many.js.{i}.>"))
                    .name(format!("js-{i}"));
                service.consume(consumer, on_many)
            }
        }),
        other => panic!("unknown case {other}: one of {CASES:?}"),
    }
}

/// Message `n`'s subject, and whether a stream captures it.
fn subject(case: &str, n: usize) -> (String, bool) {
    match case {
        "core" => (format!("scale.{n}"), false),
        "jetstream" => (format!("scale.{n}"), true),
        _ => {
            let handler = n % HANDLERS;
            if handler < HANDLERS - JETSTREAM_HANDLERS {
                (format!("many.core.{handler}.{n}"), false)
            } else {
                (format!("many.js.{handler}.{n}"), true)
            }
        }
    }
}

/// Publishes messages `from..to`, a thousand at a time (JetStream publishes
/// concurrently, each waiting for its ack), never more than `WINDOW` ahead of
/// the handlers.
async fn publish(case: &str, publisher: &Publisher, from: usize, to: usize, done: &Done) {
    let mut sent = from;
    while sent < to {
        let end = (sent + 1000).min(to);
        let stored = futures_util::future::join_all((sent..end).map(|n| async move {
            let (subject, stream) = subject(case, n);
            if stream {
                publisher.publish_to_stream(&subject, payload(n)).await.map(drop).map_err(|e| e.to_string())
            } else {
                publisher.publish(&subject, payload(n)).await.map_err(|e| e.to_string())
            }
        }))
        .await;
        assert!(stored.iter().all(Result::is_ok), "{:?}", stored.iter().find(|r| r.is_err()));
        sent = end;
        done.wait_for(sent.saturating_sub(WINDOW)).await;
    }
    publisher.client().flush().await.unwrap();
}

// ---------------------------------------------------------------- memory

/// A line of `/proc/self/status` (`VmRSS`, `VmHWM`), in MiB.
fn status_mib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|l| l.trim_start_matches(':').split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

// ---------------------------------------------------------------- one case

/// Runs `case` in this process and prints `rss <case> <MiB at each checkpoint> <peak>`.
fn run_case(case: &str, messages: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        install_w3c_propagators();
        let providers = Providers::install();
        let server = NatsServer::start().unwrap();
        let done = Arc::new(Done::default());
        let running =
            service(case, server.connect().await.unwrap(), done.clone()).start().await.unwrap().spawn();
        let publisher = Publisher::new(server.connect().await.unwrap());
        let checkpoints = [0, messages / 5, messages / 2, messages];
        let (mut rss, mut sent, started) = (Vec::new(), 0, Instant::now());
        for checkpoint in checkpoints {
            publish(case, &publisher, sent, checkpoint, &done).await;
            sent = checkpoint;
            done.wait_for(checkpoint).await;
            providers.flush().await;
            // Handlers return before their spans end and metrics record: let them.
            tokio::time::sleep(Duration::from_millis(200)).await;
            providers.flush().await;
            rss.push(status_mib("VmRSS"));
            eprintln!(
                "scale {case}: {checkpoint} handled ({} counted) at {:.1} s, RSS {:.1} MiB",
                done.count(),
                started.elapsed().as_secs_f64(),
                rss.last().unwrap()
            );
        }
        assert_eq!(done.count(), messages, "each message handled once");
        let peak = status_mib("VmHWM");
        running.stop().await.unwrap();
        let values: Vec<String> = rss.iter().chain([&peak]).map(|v| format!("{v:.2}")).collect();
        println!("rss {case} {}", values.join(" "));
    });
}

// ---------------------------------------------------------------- main

fn main() {
    let messages =
        std::env::var("NATS_OTEL_SCALE_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(500_000);
    if let Ok(case) = std::env::var("NATS_OTEL_SCALE_CASE") {
        run_case(&case, messages);
        return;
    }
    let cases = std::env::var("NATS_OTEL_SCALE_CASES").unwrap_or_else(|_| CASES.join(","));
    let started = Instant::now();
    println!(
        "nats-otel scale benchmark: {messages} messages, each on its own subject; {} cores",
        std::thread::available_parallelism().map(|p| p.get()).unwrap_or(0)
    );
    let mut rows = Vec::new();
    for case in cases.split(',').map(str::trim) {
        let output = Command::new(std::env::current_exe().unwrap())
            .args(std::env::args_os().skip(1))
            .env("NATS_OTEL_SCALE_CASE", case)
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "case {case} failed ({}): {stdout}", output.status);
        let line = stdout.lines().find_map(|l| l.strip_prefix("rss ")).expect("a result line");
        let values: Vec<f64> = line.split_whitespace().skip(1).map(|v| v.parse().unwrap()).collect();
        rows.push((case.to_owned(), values));
    }
    let label = |n: usize| if n >= 1000 { format!("{}k", n / 1000) } else { n.to_string() };
    let checkpoints = [0, messages / 5, messages / 2, messages].map(label);
    println!(
        "\n| case (RSS MiB) | {} | growth {} → {} | peak |",
        checkpoints.join(" | "),
        checkpoints[1],
        checkpoints[3]
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (case, v) in rows {
        let described = match case.as_str() {
            "core" => "(a) core, one `scale.>` handler",
            "jetstream" => "(b) JetStream, one consumer on `scale.>`",
            "many" => "(c) 200 handlers (180 core, 20 JetStream)",
            other => other,
        };
        let at: Vec<String> = v[..4].iter().map(|r| format!("{r:.1}")).collect();
        println!("| {described} | {} | {:+.1} MiB | {:.1} |", at.join(" | "), v[3] - v[1], v[4]);
    }
    println!("\ntotal {:.0} s", started.elapsed().as_secs_f64());
}
