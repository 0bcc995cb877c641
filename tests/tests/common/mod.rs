//! Shared helpers for the integration tests: a server, a client, a recorder, and
//! span-attribute accessors.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use nats_otel_runtime::testing::{NatsServer, SpanRecorder};
use nats_otel_runtime::{NatsService, ServiceHandle};
use opentelemetry::Value;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SpanData;
use tokio::sync::{Mutex, Notify};

pub struct Harness {
    pub server: NatsServer,
    pub client: async_nats::Client,
    pub recorder: SpanRecorder,
}

pub async fn start() -> Harness {
    let recorder = SpanRecorder::install();
    let server = NatsServer::start().expect("nats-server starts");
    let client = server.connect().await.expect("client connects");
    Harness { server, client, recorder }
}

/// Starts `service` in the background; returns once its subscriptions are live.
pub async fn spawn<S: Send + Sync + 'static>(service: NatsService<S>) -> ServiceHandle {
    service.start().await.expect("service subscribes").spawn()
}

pub fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| &kv.value)
}

pub fn attr_str(span: &SpanData, key: &str) -> Option<String> {
    attr(span, key).map(|v| v.as_str().into_owned())
}

pub fn attr_i64(span: &SpanData, key: &str) -> Option<i64> {
    match attr(span, key)? {
        Value::I64(v) => Some(*v),
        other => panic!("attribute {key} is not an i64: {other:?}"),
    }
}

pub fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

pub fn one<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found = named(spans, name);
    assert_eq!(found.len(), 1, "expected one `{name}` span, got {}: {:?}", found.len(), names(spans));
    found[0]
}

pub fn names(spans: &[SpanData]) -> Vec<String> {
    spans.iter().map(|s| s.name.to_string()).collect()
}

pub fn count(spans: &[SpanData], name: &str) -> usize {
    spans.iter().filter(|s| s.name == name).count()
}

pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    within_secs(20, what, future).await
}

/// Waits for `future`, failing the test after `seconds`.
pub async fn within_secs<T>(seconds: u64, what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(seconds), future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {seconds}s: {what}"))
}

/// Distinct ids a handler has seen and how often each, with a way to await a count.
#[derive(Clone, Default)]
pub struct Seen {
    pub ids: Arc<Mutex<HashMap<u64, usize>>>,
    changed: Arc<Notify>,
}

impl Seen {
    pub async fn add(&self, id: u64) {
        *self.ids.lock().await.entry(id).or_default() += 1;
        self.changed.notify_waiters();
    }

    /// Waits (up to two minutes: failovers are slow) for `n` distinct ids.
    pub async fn wait_distinct(&self, n: usize) {
        within_secs(120, &format!("{n} distinct ids processed"), async {
            loop {
                let changed = self.changed.notified();
                if self.ids.lock().await.len() >= n {
                    return;
                }
                changed.await;
            }
        })
        .await;
    }
}

/// Polls the consumer's state on the server until nothing is pending or unacked
/// (errors while a cluster fails over are polled through), for up to `seconds`.
///
/// The state must read the same twice, 100 ms apart: the server acks a publish
/// before its consumers count the message (a stream hands new messages to its
/// consumers through an internal queue), so one read can show a consumer with
/// nothing pending while the last message is still on its way to it.
pub async fn settled(
    stream: &async_nats::jetstream::stream::Stream,
    durable: &str,
    seconds: u64,
) -> async_nats::jetstream::consumer::Info {
    within_secs(seconds, "consumer: num_pending = 0 and num_ack_pending = 0, twice", async {
        let mut seen = None;
        loop {
            match stream.clone().consumer_info(durable).await {
                Ok(info) if info.num_pending == 0 && info.num_ack_pending == 0 => {
                    let now = (info.delivered.stream_sequence, info.ack_floor.stream_sequence);
                    if seen == Some(now) {
                        return info.clone();
                    }
                    seen = Some(now);
                }
                _ => seen = None,
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
}

/// A count a test can await: how far a load has got before a failure is injected.
#[derive(Clone, Default)]
pub struct Progress {
    count: Arc<std::sync::atomic::AtomicUsize>,
    changed: Arc<Notify>,
}

impl Progress {
    pub fn advance(&self) {
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    pub fn get(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits (up to a minute) until the count is at least `n`.
    pub async fn reach(&self, n: u64, what: &str) {
        within_secs(60, what, async {
            loop {
                let changed = self.changed.notified();
                if self.get() as u64 >= n {
                    return;
                }
                changed.await;
            }
        })
        .await;
    }
}

type StreamPublished =
    Result<async_nats::jetstream::publish::PublishAck, nats_otel_runtime::StreamPublishError>;

/// `publishers` tasks that publish `{"id": …}` for the ids `0..n` between them to
/// `subject`, each with `Nats-Msg-Id: item-{id}` so that retries store nothing
/// twice; every publish advances `progress`.
pub struct ItemPublishers(Vec<tokio::task::JoinHandle<Vec<StreamPublished>>>);

impl ItemPublishers {
    pub fn start(
        publisher: &nats_otel_runtime::Publisher,
        subject: &'static str,
        n: u64,
        publishers: u64,
        progress: &Progress,
    ) -> Self {
        let tasks = (0..publishers)
            .map(|first| {
                let (publisher, progress) = (publisher.clone(), progress.clone());
                tokio::spawn(async move {
                    let mut acks = Vec::new();
                    for id in (first..n).step_by(publishers as usize) {
                        let options = nats_otel_runtime::publisher::StreamPublish::new()
                            .message_id(format!("item-{id}"));
                        let payload = serde_json::to_vec(&serde_json::json!({ "id": id })).unwrap();
                        acks.push(publisher.publish_to_stream_with(subject, options, payload).await);
                        progress.advance();
                    }
                    acks
                })
            })
            .collect();
        Self(tasks)
    }

    /// Every publisher's results, once all have finished (failing after `seconds`).
    pub async fn finish(self, seconds: u64) -> Vec<StreamPublished> {
        let mut acks = Vec::new();
        for task in self.0 {
            acks.extend(within_secs(seconds, "publishers finish", task).await.unwrap());
        }
        acks
    }
}

/// One data point, flattened for assertions.
#[derive(Debug, Clone)]
pub struct Point {
    pub metric: String,
    pub unit: String,
    pub attributes: Vec<(String, String)>,
    /// Sum or gauge value, or histogram count.
    pub value: f64,
    pub bounds: Vec<f64>,
}

impl Point {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// An in-memory meter provider, installed as the global one (the test's
/// process's: nextest runs each test in a process of its own), and the exporter
/// to read its points from ([`points`]) once the provider is flushed.
pub fn install_metrics() -> (InMemoryMetricExporter, SdkMeterProvider) {
    let exporter = InMemoryMetricExporter::default();
    let provider =
        SdkMeterProvider::builder().with_reader(PeriodicReader::builder(exporter.clone()).build()).build();
    opentelemetry::global::set_meter_provider(provider.clone());
    (exporter, provider)
}

pub fn points(exporter: &InMemoryMetricExporter) -> Vec<Point> {
    let exported = exporter.get_finished_metrics().unwrap();
    let last = exported.last().expect("an export");
    let mut out = Vec::new();
    for scope in last.scope_metrics() {
        for metric in scope.metrics() {
            let mut push = |attributes: Vec<(String, String)>, value: f64, bounds: Vec<f64>| {
                out.push(Point {
                    metric: metric.name().to_owned(),
                    unit: metric.unit().to_owned(),
                    attributes,
                    value,
                    bounds,
                });
            };
            let attrs = |it: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| {
                it.map(|kv| (kv.key.to_string(), kv.value.to_string())).collect::<Vec<_>>()
            };
            match metric.data() {
                AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                    for dp in h.data_points() {
                        push(attrs(&mut dp.attributes()), dp.count() as f64, dp.bounds().collect());
                    }
                }
                AggregatedMetrics::U64(MetricData::Sum(s)) => {
                    for dp in s.data_points() {
                        push(attrs(&mut dp.attributes()), dp.value() as f64, vec![]);
                    }
                }
                AggregatedMetrics::I64(MetricData::Sum(s)) => {
                    for dp in s.data_points() {
                        push(attrs(&mut dp.attributes()), dp.value() as f64, vec![]);
                    }
                }
                AggregatedMetrics::I64(MetricData::Gauge(g)) => {
                    for dp in g.data_points() {
                        push(attrs(&mut dp.attributes()), dp.value() as f64, vec![]);
                    }
                }
                other => panic!("unexpected data for {}: {other:?}", metric.name()),
            }
        }
    }
    out
}

pub fn total(points: &[Point], metric: &str, filter: impl Fn(&Point) -> bool) -> f64 {
    points.iter().filter(|p| p.metric == metric && filter(p)).map(|p| p.value).sum()
}

/// As [`total`], but fails when no point matches: a value of 0 then means 0,
/// never a metric that is missing.
pub fn reported(points: &[Point], metric: &str, filter: impl Fn(&Point) -> bool) -> f64 {
    let matching: Vec<&Point> = points.iter().filter(|p| p.metric == metric && filter(p)).collect();
    assert!(!matching.is_empty(), "no `{metric}` point matches: {points:#?}");
    matching.iter().map(|p| p.value).sum()
}
