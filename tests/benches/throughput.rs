//! Throughput of nats-otel against hand-written async-nats loops, in one run.
//!
//! ```sh
//! ./scripts/bench                  # or: cargo bench -p tests --bench throughput
//! NATS_OTEL_BENCH_MESSAGES=20000 NATS_OTEL_BENCH_ROUNDS=3 ./scripts/bench   # quicker
//! ```
//!
//! Scenarios (see BENCHMARKS.md):
//! - A: JetStream: consume ~256-byte JSON messages with a `traceparent` from a memory
//!   stream through a durable pull consumer, decode, ack.
//! - B: core request-reply: 64 requests in flight, the responder decodes and replies.
//! - C: core publish: traced publishes against raw `publish_with_headers`, and
//!   with broker tracing (`Nats-Trace-Dest`) on every publish and on 1 in 100;
//!   in batches of 100; against a publish traced by hand (seed guide §4.1); and
//!   head-sampled (`ParentBased(TraceIdRatio(0.01))`). `NATS_OTEL_BENCH_ROWS`
//!   picks rows, to profile one alone.
//! - D: peak RSS while consuming a 1,000,000-message backlog with full telemetry.
//! - A100: A in batches of 100: hand-written batched loops (raw, and traced
//!   with a linked batch span and an ack span a message) against a batch handler.
//! - L: A's toolkit variant with one log line a message through `tracing-subscriber`'s
//!   fmt layer, plain and joined to traces (`LogContext`).
//! - E: A's variants (1), (2) and (3) with real span export: OTLP http/protobuf
//!   (opentelemetry-otlp's exporter, the SDK's default batch processor) to the
//!   test kit's receiver in the process, which decodes every request and counts
//!   the spans; each round includes its final flush. Prints the spans received.
//!
//! `NATS_OTEL_BENCH_SETTLE=event` makes the toolkit's JetStream consumers record
//! settlements as events on the process span instead of `ack` spans.
//!
//! Variants for A and B, alternated within each round:
//! 1. raw async-nats loop, no tracing (the limit);
//! 2. the same loop, hand-instrumented with the OpenTelemetry API, emitting the same
//!    spans and attributes as the toolkit (seed guide §5);
//! 3. the toolkit's handler, tracing on (AlwaysOn, batch processor into a no-op
//!    exporter, metrics on);
//! 4. the toolkit's handler with no subscriber and no providers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{PullConsumer, pull};
use async_nats::jetstream::{self, stream};
use async_nats::{HeaderMap, Message};
use bytes::Bytes;
use futures_util::StreamExt;
use nats_otel_runtime::broker::BrokerTracing;
use nats_otel_runtime::propagation::HeaderExtractor;
use nats_otel_runtime::publisher::Outgoing;
use nats_otel_runtime::testing::{NatsServer, install_w3c_propagators};
use nats_otel_runtime::{JetStreamConsumer, Json, NatsService, Publisher, State, Subscription};
use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::{KeyValue, global};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality, data::ResourceMetrics};
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::{Deserialize, Serialize};
use tests::otlp::OtlpReceiver;
use tokio::sync::Notify;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;

#[path = "common/noop.rs"]
mod noop;
use noop::{NoopMetrics, NoopSpans};
use tests::rounds::{median, median_with_interval};

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: u64,
    customer: String,
    sku: String,
    quantity: u32,
    cents: u64,
    currency: String,
    region: String,
    note: String,
    tags: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Ack {
    id: u64,
    ok: bool,
}

fn order_payload(id: u64) -> Bytes {
    let order = Order {
        id,
        customer: format!("customer-{:08}", id % 100_000),
        sku: "SKU-4A7F-9921-BLUE-XL".into(),
        quantity: 3,
        cents: 129_900,
        currency: "EUR".into(),
        region: "eu-central".into(),
        note: "leave at the door, ring twice, fragile contents inside the box".into(),
        tags: vec!["priority".into(), "gift".into(), "returning-customer".into()],
    };
    Bytes::from(serde_json::to_vec(&order).unwrap())
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn traced_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("traceparent", TRACEPARENT);
    headers
}

// ---------------------------------------------------------------- telemetry set-ups

/// What the batch span processor says it dropped because its queue was full:
/// the SDK's self-diagnostic counter `otel.sdk.processor.span.processed` with
/// `error.type=queue_full`, which a processor records through the global meter
/// provider of the moment it was built. Read at each export (cumulative).
#[derive(Debug, Clone, Default)]
struct DroppedSpans(Arc<AtomicU64>);

impl DroppedSpans {
    fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl opentelemetry_sdk::metrics::exporter::PushMetricExporter for DroppedSpans {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
        let dropped = metrics
            .scope_metrics()
            .flat_map(|scope| scope.metrics())
            .filter(|metric| metric.name() == "otel.sdk.processor.span.processed")
            .filter_map(|metric| match metric.data() {
                AggregatedMetrics::U64(MetricData::Sum(sum)) => Some(sum),
                _ => None,
            })
            .flat_map(|sum| sum.data_points())
            .filter(|point| {
                point
                    .attributes()
                    .any(|kv| kv.key.as_str() == "error.type" && kv.value.as_str() == "queue_full")
            })
            .map(|point| point.value())
            .sum();
        self.0.store(dropped, Ordering::Relaxed);
        Ok(())
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

/// The `tracing-opentelemetry` layer of variants 2 and 3, carefully
/// configured: no per-span source locations or thread ids.
fn bridge<S>(
    tracer: &SdkTracerProvider,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer.tracer("bench"))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_target(false)
        .with_context_activation(std::env::var_os("NATS_OTEL_BENCH_NO_ACTIVATION").is_none())
}

/// The provider configuration shared by variants 2 and 3.
struct Providers {
    tracer: SdkTracerProvider,
    meter: SdkMeterProvider,
    dispatch: tracing::Dispatch,
}

impl Providers {
    fn new() -> Self {
        Self::exporting_to(NoopSpans)
    }

    /// The providers with their spans exported by `exporter`, through the
    /// SDK's batch span processor with its default settings (queue 2048,
    /// batches of 512, every 5 s; or `OTEL_BSP_*`): what `telemetry::init`
    /// gives users.
    fn exporting_to(exporter: impl opentelemetry_sdk::trace::SpanExporter + 'static) -> Self {
        let tracer = SdkTracerProvider::builder()
            .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn)
            .with_batch_exporter(exporter)
            .build();
        let meter =
            SdkMeterProvider::builder().with_reader(PeriodicReader::builder(NoopMetrics).build()).build();
        let layer = bridge(&tracer);
        // Filtered at INFO as `telemetry::init` does: async-nats' per-message
        // `trace!`/`debug!` events never reach the layers.
        let dispatch = tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(layer.with_filter(LevelFilter::INFO))
                .with(nats_otel_runtime::span_events::SpanEvents::new().with_filter(LevelFilter::INFO)),
        );
        Self { tracer, meter, dispatch }
    }

    /// The dispatch of variants 2 and 3 with a fmt layer writing every INFO
    /// line to a sink, `joined` to traces (`LogContext`) or not.
    fn with_log_lines(&self, joined: bool) -> tracing::Dispatch {
        use nats_otel_runtime::log_context::LogContext;
        use tracing_subscriber::fmt::format::Format;
        let layer = bridge(&self.tracer);
        let format = Format::default().with_ansi(false);
        let lines = tracing_subscriber::fmt::layer().with_writer(std::io::sink).with_ansi(false);
        let lines = if joined {
            lines.event_format(LogContext::new(format)).with_filter(LevelFilter::INFO).boxed()
        } else {
            lines.event_format(format).with_filter(LevelFilter::INFO).boxed()
        };
        tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(layer.with_filter(LevelFilter::INFO))
                .with(nats_otel_runtime::span_events::SpanEvents::new().with_filter(LevelFilter::INFO))
                .with(lines),
        )
    }

    fn install_globals(&self) {
        global::set_tracer_provider(self.tracer.clone());
        if std::env::var("NATS_OTEL_BENCH_NO_METRICS").is_ok_and(|v| v == "1") {
            global::set_meter_provider(opentelemetry::metrics::noop::NoopMeterProvider::new());
        } else {
            global::set_meter_provider(self.meter.clone());
        }
    }

    /// Between variants, outside any timing: exports the spans a variant left
    /// queued, and lets the server finish its work for it (acks, a deleted
    /// consumer, a closed connection), so the next variant does not pay for them.
    async fn settle(&self) {
        let tracer = self.tracer.clone();
        let _ = tokio::task::spawn_blocking(move || tracer.force_flush()).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    /// Exports the spans still queued and waits for the exporter to finish:
    /// how long that took. Scenario E counts it in the round, so a variant
    /// pays for exporting all the spans it made, not only those exported while
    /// it ran (up to a queue's worth, 2048 spans by default, would otherwise
    /// go out untimed).
    ///
    /// The SDK gives up waiting after 5 s while its exporter goes on; a large
    /// queue (`OTEL_BSP_MAX_QUEUE_SIZE`) on a loaded machine takes longer, so
    /// the flush is asked again, behind the one still running, for up to two
    /// minutes.
    async fn flush(&self) -> Duration {
        let started = Instant::now();
        loop {
            let tracer = self.tracer.clone();
            match tokio::task::spawn_blocking(move || tracer.force_flush()).await.unwrap() {
                Ok(()) => return started.elapsed(),
                Err(OTelSdkError::Timeout(_)) if started.elapsed() < Duration::from_secs(120) => {}
                Err(e) => panic!("the queued spans were not exported after {:?}: {e}", started.elapsed()),
            }
        }
    }
}

/// Scenario E's span exporter: opentelemetry-otlp's, over HTTP with protobuf
/// bodies and its default client (reqwest's blocking one, as `telemetry::init`
/// builds for `OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`), sending to the
/// receiver at `endpoint`.
fn otlp_http_spans(endpoint: &str) -> opentelemetry_otlp::SpanExporter {
    use opentelemetry_otlp::WithExportConfig as _;
    // reqwest is built with rustls but no crypto provider; `telemetry::init`
    // installs ring as the process's, and so does the bench.
    let _ = rustls::crypto::CryptoProvider::install_default(rustls::crypto::ring::default_provider());
    opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(format!("{endpoint}/v1/traces"))
        .build()
        .unwrap()
}

/// The variants of one round: a rotation of the list, forwards in even rounds
/// and backwards in odd ones, so that no variant always goes first or always
/// runs right after the same other one.
fn round_order(round: usize) -> impl Iterator<Item = (usize, Variant)> {
    let count = VARIANTS.len();
    (0..count)
        .map(move |k| {
            let k = if round.is_multiple_of(2) { k } else { count - 1 - k };
            (k + round / 2) % count
        })
        .filter(|v| selected(*v))
        .map(|v| (v, VARIANTS[v]))
}

fn uninstall_globals() {
    global::set_tracer_provider(opentelemetry::trace::noop::NoopTracerProvider::new());
    global::set_meter_provider(opentelemetry::metrics::noop::NoopMeterProvider::new());
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Raw,
    HandWritten,
    Toolkit,
    ToolkitBare,
}

const VARIANTS: [Variant; 4] = [Variant::Raw, Variant::HandWritten, Variant::Toolkit, Variant::ToolkitBare];

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::Raw => "(1) raw async-nats",
            Variant::HandWritten => "(2) hand-instrumented",
            Variant::Toolkit => "(3) nats-otel, telemetry on",
            Variant::ToolkitBare => "(4) nats-otel, no telemetry",
        }
    }
}

/// Counts handled messages; wakes the bench when the target is reached.
#[derive(Default)]
struct Done {
    count: AtomicUsize,
    target: AtomicUsize,
    notify: Notify,
}

impl Done {
    fn reset(&self, target: usize) {
        self.count.store(0, Ordering::SeqCst);
        self.target.store(target, Ordering::SeqCst);
    }
    fn hit(&self) {
        self.hit_many(1);
    }
    fn hit_many(&self, handled: usize) {
        let before = self.count.fetch_add(handled, Ordering::AcqRel);
        let target = self.target.load(Ordering::Acquire);
        if before < target && before + handled >= target {
            self.notify.notify_one();
        }
    }
    async fn wait(&self) {
        while self.count.load(Ordering::Acquire) < self.target.load(Ordering::Acquire) {
            let notified = self.notify.notified();
            if self.count.load(Ordering::Acquire) >= self.target.load(Ordering::Acquire) {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
    }
}

// ---------------------------------------------------------------- memory

/// Resets the peak resident set size (Linux: writing 5 to clear_refs).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set size since the last reset, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

// ---------------------------------------------------------------- A: JetStream

const STREAM: &str = "BENCH";
const FILTER: &str = "bench.orders";

async fn consumer(js: &jetstream::Context, name: &str) -> PullConsumer {
    let stream = js.get_stream(STREAM).await.unwrap();
    stream
        .create_consumer(pull::Config {
            durable_name: Some(name.into()),
            filter_subject: FILTER.into(),
            ..Default::default()
        })
        .await
        .unwrap()
}

/// The next message of a pull stream, past the errors it reports and goes on
/// from (a missed heartbeat when the machine stalls), as a careful loop does.
async fn next_message(messages: &mut pull::Stream) -> jetstream::Message {
    for _ in 0..10 {
        match messages.next().await {
            Some(Ok(message)) => return message,
            Some(Err(e)) => eprintln!("pull stream: {e}"),
            None => panic!("the pull stream ended"),
        }
    }
    panic!("the pull stream keeps failing")
}

/// One round of A's `variant` on a durable consumer `name` made for it and a
/// connection of its own, both gone after: how long it took. With `flush`,
/// that includes exporting the spans still queued when it finished
/// ([`Providers::flush`]).
async fn js_round(
    server: &NatsServer,
    js: &jetstream::Context,
    name: &str,
    variant: Variant,
    providers: &Providers,
    n: usize,
    flush: bool,
) -> Duration {
    let consumer = consumer(js, name).await;
    let consumer_client = server.connect().await.unwrap();
    if matches!(variant, Variant::HandWritten | Variant::Toolkit) {
        providers.install_globals();
    } else {
        uninstall_globals();
    }
    reset_peak_rss();
    let mut elapsed = match variant {
        Variant::Raw => on_worker(js_raw(bind(&consumer_client, name).await, n)).await,
        Variant::HandWritten => {
            let (consumer, client) = (bind(&consumer_client, name).await, consumer_client.clone());
            on_worker(async move { js_hand_written(consumer, &client, n).await }).await
        }
        Variant::Toolkit => js_toolkit(&consumer_client, name, n, Some(&providers.dispatch)).await,
        Variant::ToolkitBare => js_toolkit(&consumer_client, name, n, None).await,
    };
    if flush {
        elapsed += providers.flush().await;
    }
    drop(consumer);
    let _ = consumer_client.drain().await;
    js.get_stream(STREAM).await.unwrap().delete_consumer(name).await.unwrap();
    elapsed
}

/// Runs a hand-written loop on one of the runtime's workers, where the
/// toolkit's handlers run, rather than on the thread that drives the bench: on
/// the main thread every message the connection's task (on a worker) hands
/// over would cross threads, a cost the toolkit's loop does not pay.
async fn on_worker(work: impl Future<Output = Duration> + Send + 'static) -> Duration {
    tokio::spawn(work).await.unwrap()
}

async fn js_raw(consumer: PullConsumer, n: usize) -> Duration {
    let started = Instant::now();
    let mut messages = consumer.messages().await.unwrap();
    for _ in 0..n {
        let message = next_message(&mut messages).await;
        let order: Order = serde_json::from_slice(&message.payload).unwrap();
        std::hint::black_box(order);
        message.ack().await.unwrap();
    }
    started.elapsed()
}

/// What every hand-instrumented loop reads once: its tracer, and the
/// connection's attribute values.
struct HandWritten {
    tracer: global::BoxedTracer,
    client_id: String,
    port: i64,
}

impl HandWritten {
    fn of(client: &async_nats::Client) -> Self {
        let info = client.server_info();
        Self {
            tracer: global::tracer("bench-hand-written"),
            client_id: info.client_id.to_string(),
            port: i64::from(info.port),
        }
    }
}

/// `messaging.message.id` of a JetStream message, as the toolkit makes it.
fn message_id(message: &async_nats::jetstream::Message) -> String {
    message.info().map(|i| format!("{}:{}", i.stream, i.stream_sequence)).unwrap()
}

/// The attributes the toolkit puts on a JetStream process span, written by hand.
fn js_process_attributes(
    message: &async_nats::jetstream::Message,
    id: String,
    client_id: &str,
    port: i64,
) -> Vec<KeyValue> {
    let info = message.info().unwrap();
    vec![
        KeyValue::new("messaging.system", "nats"),
        KeyValue::new("messaging.operation.name", "process"),
        KeyValue::new("messaging.operation.type", "process"),
        KeyValue::new("messaging.destination.name", message.subject.to_string()),
        KeyValue::new("messaging.destination.subscription.name", info.consumer.to_owned()),
        KeyValue::new("messaging.consumer.group.name", info.consumer.to_owned()),
        KeyValue::new("messaging.message.id", id),
        KeyValue::new("messaging.message.body.size", message.payload.len() as i64),
        KeyValue::new("messaging.client.id", client_id.to_owned()),
        KeyValue::new("server.address", "127.0.0.1"),
        KeyValue::new("server.port", port),
        KeyValue::new("messaging.nats.jetstream.stream", info.stream.to_owned()),
        KeyValue::new("messaging.nats.jetstream.consumer", info.consumer.to_owned()),
        KeyValue::new("messaging.nats.jetstream.sequence", info.stream_sequence as i64),
        KeyValue::new("messaging.nats.jetstream.consumer_sequence", info.consumer_sequence as i64),
        KeyValue::new("messaging.nats.jetstream.num_delivered", info.delivered),
        KeyValue::new("messaging.nats.jetstream.num_pending", info.pending as i64),
    ]
}

/// The attributes the toolkit puts on a JetStream settle span, written by hand.
fn js_settle_attributes(
    message: &async_nats::jetstream::Message,
    id: String,
    durable: &str,
    client_id: &str,
    port: i64,
) -> Vec<KeyValue> {
    vec![
        KeyValue::new("messaging.system", "nats"),
        KeyValue::new("messaging.operation.name", "ack"),
        KeyValue::new("messaging.operation.type", "settle"),
        KeyValue::new("messaging.destination.name", message.subject.to_string()),
        KeyValue::new("messaging.message.id", id),
        KeyValue::new("messaging.destination.subscription.name", durable.to_owned()),
        KeyValue::new("messaging.consumer.group.name", durable.to_owned()),
        KeyValue::new("messaging.client.id", client_id.to_owned()),
        KeyValue::new("server.address", "127.0.0.1"),
        KeyValue::new("server.port", port),
        KeyValue::new("messaging.nats.jetstream.ack", "ack"),
    ]
}

async fn js_hand_written(consumer: PullConsumer, client: &async_nats::Client, n: usize) -> Duration {
    let HandWritten { tracer, client_id, port } = HandWritten::of(client);
    let durable = consumer.cached_info().name.clone();
    let started = Instant::now();
    let mut messages = consumer.messages().await.unwrap();
    for _ in 0..n {
        let message = next_message(&mut messages).await;
        let parent = message
            .headers
            .as_ref()
            .map(|h| global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(h))))
            .unwrap_or_default();
        // The message id, made once for the process and the settle span.
        let id = message_id(&message);
        let span = tracer
            .span_builder(format!("process {FILTER}"))
            .with_kind(SpanKind::Consumer)
            .with_attributes(js_process_attributes(&message, id.clone(), &client_id, port))
            .start_with_context(&tracer, &parent);
        let cx = parent.with_span(span);
        let order: Order = serde_json::from_slice(&message.payload).unwrap();
        std::hint::black_box(order);
        let mut settle = tracer
            .span_builder(format!("ack {FILTER}"))
            .with_kind(SpanKind::Client)
            .with_attributes(js_settle_attributes(&message, id, &durable, &client_id, port))
            .start_with_context(&tracer, &cx);
        message.ack().await.unwrap();
        settle.end();
        cx.span().set_attribute(KeyValue::new("messaging.nats.jetstream.ack", "ack"));
        cx.span().end();
    }
    started.elapsed()
}

async fn js_handler(Json(order): Json<Order>, State(done): State<Arc<Done>>) {
    std::hint::black_box(order);
    done.hit();
}

/// Scenario L's handler: A's, with one log line a message.
async fn js_logging_handler(Json(order): Json<Order>, State(done): State<Arc<Done>>) {
    tracing::info!(id = order.id, quantity = order.quantity, "order received");
    std::hint::black_box(order);
    done.hit();
}

async fn js_toolkit(
    client: &async_nats::Client,
    name: &str,
    n: usize,
    dispatch: Option<&tracing::Dispatch>,
) -> Duration {
    js_toolkit_with(client, bound(name), n, dispatch, js_handler).await
}

/// The bench's consumer `name`, bound (created by the bench). Settlements are
/// spans, the default; `NATS_OTEL_BENCH_SETTLE=event` records them as events
/// on the process span instead, to weigh one against the other.
fn bound(name: &str) -> JetStreamConsumer {
    let settle = match std::env::var("NATS_OTEL_BENCH_SETTLE").as_deref() {
        Ok("event") => nats_otel_runtime::SettleRecord::Event,
        _ => nats_otel_runtime::SettleRecord::Span,
    };
    JetStreamConsumer::new(STREAM, name.to_owned()).filter(FILTER).create(false).settle_record(settle)
}

async fn js_toolkit_with<H, T>(
    client: &async_nats::Client,
    consumer: JetStreamConsumer,
    n: usize,
    dispatch: Option<&tracing::Dispatch>,
    handler: H,
) -> Duration
where
    H: nats_otel_runtime::Handler<T, Arc<Done>>,
    T: 'static,
{
    let done = Arc::new(Done::default());
    done.reset(n);
    let service = NatsService::new(client.clone()).state(done.clone()).consume(consumer, handler);
    let started = match dispatch {
        Some(dispatch) => tracing::dispatcher::with_default(dispatch, || service.start()).await,
        None => service.start().await,
    }
    .unwrap();
    let clock = Instant::now();
    let running = started.spawn();
    done.wait().await;
    let elapsed = clock.elapsed();
    running.stop().await.unwrap();
    elapsed
}

// ---------------------------------------------------------------- E: A with OTLP export

/// Scenario E: A's variants (1), (2) and (3), the traced ones exporting their
/// spans for real, as OTLP over HTTP with protobuf bodies ([`otlp_http_spans`])
/// to the test kit's receiver, which decodes every request and counts its
/// spans. The no-op exporter of A hides that cost. The receiver runs on a
/// runtime of its own (one thread), as a collector beside the service would:
/// it shares the machine's cores, not the service's workers. Each round counts
/// its final flush ([`Providers::flush`]).
async fn otlp_export(server: &NatsServer, js: &jetstream::Context, n: usize, rounds: usize) {
    let collector = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otlp-receiver")
        .enable_all()
        .build()
        .unwrap();
    let receiver = collector.spawn(OtlpReceiver::start_counting()).await.unwrap().unwrap();
    // The processor's drop counter goes to `diagnostics`, global while it is built.
    let dropped = DroppedSpans::default();
    let diagnostics =
        SdkMeterProvider::builder().with_reader(PeriodicReader::builder(dropped.clone()).build()).build();
    global::set_meter_provider(diagnostics.clone());
    let providers = Providers::exporting_to(otlp_http_spans(receiver.endpoint()));
    let mut results = Results::new(3);
    // Per variant: spans received and dropped during its rounds, rounds run.
    let (mut received, mut lost, mut ran) = ([0u64; 3], [0u64; 3], [0u64; 3]);
    for round in 0..rounds {
        for (v, variant) in round_order(round).filter(|(_, variant)| *variant != Variant::ToolkitBare) {
            let before = (receiver.span_count(), dropped.count());
            let name = format!("otlp{round}v{v}");
            let elapsed = js_round(server, js, &name, variant, &providers, n, true).await;
            results.rss[v] = results.rss[v].max(peak_rss_mib());
            results.rates[v].push(n as f64 / elapsed.as_secs_f64());
            providers.settle().await;
            diagnostics.force_flush().unwrap();
            received[v] += receiver.span_count() - before.0;
            lost[v] += dropped.count() - before.1;
            ran[v] += 1;
        }
    }
    uninstall_globals();
    let labels: Vec<_> = VARIANTS[..3].iter().map(|v| v.label()).collect();
    results.print("E. A with OTLP export (http/protobuf)", &labels);
    println!("(3) vs (2) with OTLP export: {} (issue 21: >= 1.0)", results.ratio(2, 1));
    // Both traced variants end two spans a message, `process` and `ack`; (3)
    // also two a round as its service starts (`start`, the consumer's binding).
    for v in [1, 2].into_iter().filter(|&v| ran[v] > 0) {
        println!(
            "{}: {} spans received, {} dropped by the batch processor (queue full); {} process and ack spans ended",
            labels[v],
            received[v],
            lost[v],
            2 * n as u64 * ran[v],
        );
        assert!(received[v] > 0, "{}: no span reached the receiver", labels[v]);
    }
    let _ = providers.tracer.shutdown();
    let _ = diagnostics.shutdown();
    drop(receiver);
    collector.shutdown_background();
}

// ---------------------------------------------------------------- A100: JetStream in batches

/// Messages per batch in scenario A100.
const BATCH: usize = 100;
/// How long a batch waits to fill.
const BATCH_WAIT: Duration = Duration::from_millis(100);

/// The next batch of a pull stream, as a careful hand-written loop gathers
/// it: up to `BATCH` messages (and no more than `left`), or what came within
/// `BATCH_WAIT` of the first.
async fn next_batch(messages: &mut pull::Stream, left: usize) -> Vec<jetstream::Message> {
    let mut batch = Vec::with_capacity(BATCH);
    batch.push(next_message(messages).await);
    let deadline = tokio::time::sleep(BATCH_WAIT);
    tokio::pin!(deadline);
    while batch.len() < BATCH.min(left) {
        tokio::select! {
            message = next_message(messages) => batch.push(message),
            () = &mut deadline => break,
        }
    }
    batch
}

/// Variants (1) and (2) of A100: decode each message of a batch, then ack
/// them all; (2) in one `process` span linked to each message's context, with
/// an `ack` span per message, as the toolkit records it.
async fn js_batched(consumer: PullConsumer, client: &async_nats::Client, n: usize, traced: bool) -> Duration {
    let HandWritten { tracer, client_id, port } = HandWritten::of(client);
    let durable = consumer.cached_info().name.clone();
    let started = Instant::now();
    let mut messages = consumer.messages().await.unwrap();
    let mut handled = 0;
    while handled < n {
        let batch = next_batch(&mut messages, n - handled).await;
        let cx = traced.then(|| {
            let links = batch
                .iter()
                .filter_map(|message| message.headers.as_ref())
                .map(|h| global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(h))))
                .map(|parent| parent.span().span_context().clone())
                .filter(|span| span.is_valid())
                .map(opentelemetry::trace::Link::with_context)
                .collect();
            let span = tracer
                .span_builder(format!("process {FILTER}"))
                .with_kind(SpanKind::Consumer)
                .with_attributes([
                    KeyValue::new("messaging.system", "nats"),
                    KeyValue::new("messaging.operation.name", "process"),
                    KeyValue::new("messaging.operation.type", "process"),
                    KeyValue::new("messaging.destination.name", FILTER),
                    KeyValue::new("messaging.destination.subscription.name", durable.clone()),
                    KeyValue::new("messaging.consumer.group.name", durable.clone()),
                    KeyValue::new("messaging.client.id", client_id.clone()),
                    KeyValue::new("server.address", "127.0.0.1"),
                    KeyValue::new("server.port", port),
                    KeyValue::new("messaging.nats.jetstream.stream", STREAM),
                    KeyValue::new("messaging.nats.jetstream.consumer", durable.clone()),
                    KeyValue::new("messaging.batch.message_count", batch.len() as i64),
                ])
                .with_links(links)
                .start_with_context(&tracer, &opentelemetry::Context::new());
            opentelemetry::Context::new().with_span(span)
        });
        for message in &batch {
            let order: Order = serde_json::from_slice(&message.payload).unwrap();
            std::hint::black_box(order);
        }
        for message in &batch {
            let settle = cx.as_ref().map(|cx| {
                let id = message_id(message);
                tracer
                    .span_builder(format!("ack {FILTER}"))
                    .with_kind(SpanKind::Client)
                    .with_attributes(js_settle_attributes(message, id, &durable, &client_id, port))
                    .start_with_context(&tracer, cx)
            });
            message.ack().await.unwrap();
            if let Some(mut settle) = settle {
                settle.end();
            }
        }
        if let Some(cx) = cx {
            cx.span().end();
        }
        handled += batch.len();
    }
    started.elapsed()
}

async fn js_batch_handler(orders: nats_otel_runtime::Batch<Json<Order>>, State(done): State<Arc<Done>>) {
    let handled = orders.len();
    for order in orders {
        std::hint::black_box(order.into_inner());
    }
    done.hit_many(handled);
}

// ---------------------------------------------------------------- B: request-reply

const RPC: &str = "bench.rpc";
const IN_FLIGHT: usize = 64;

async fn requests(requester: &async_nats::Client, n: usize) -> Duration {
    let payload = order_payload(1);
    let headers = traced_headers();
    let started = Instant::now();
    let answered = futures_util::stream::iter(0..n)
        .map(|_| requester.request_with_headers(RPC, headers.clone(), payload.clone()))
        .buffer_unordered(IN_FLIGHT)
        .filter(|r| std::future::ready(r.is_ok()))
        .count()
        .await;
    assert_eq!(answered, n, "every request answered");
    started.elapsed()
}

fn ack_reply(order: &Order) -> Bytes {
    Bytes::from(serde_json::to_vec(&Ack { id: order.id, ok: true }).unwrap())
}

async fn rpc_raw_responder(client: async_nats::Client, mut subscriber: async_nats::Subscriber) {
    while let Some(message) = subscriber.next().await {
        let order: Order = serde_json::from_slice(&message.payload).unwrap();
        if let Some(reply) = message.reply {
            client.publish(reply, ack_reply(&order)).await.unwrap();
        }
    }
}

fn rpc_attributes(message: &Message, client_id: &str, port: i64) -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new("messaging.system", "nats"),
        KeyValue::new("messaging.operation.name", "process"),
        KeyValue::new("messaging.operation.type", "process"),
        KeyValue::new("messaging.destination.name", message.subject.to_string()),
        KeyValue::new("messaging.message.body.size", message.payload.len() as i64),
        KeyValue::new("messaging.client.id", client_id.to_owned()),
        KeyValue::new("server.address", "127.0.0.1"),
        KeyValue::new("server.port", port),
    ];
    if let Some(reply) = &message.reply {
        attributes.push(KeyValue::new("messaging.nats.reply_to", reply.to_string()));
    }
    attributes
}

async fn rpc_hand_written_responder(client: async_nats::Client, mut subscriber: async_nats::Subscriber) {
    let HandWritten { tracer, client_id, port } = HandWritten::of(&client);
    while let Some(message) = subscriber.next().await {
        let parent = message
            .headers
            .as_ref()
            .map(|h| global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(h))))
            .unwrap_or_default();
        let span = tracer
            .span_builder(format!("process {RPC}"))
            .with_kind(SpanKind::Consumer)
            .with_attributes(rpc_attributes(&message, &client_id, port))
            .start_with_context(&tracer, &parent);
        let cx = parent.with_span(span);
        let order: Order = serde_json::from_slice(&message.payload).unwrap();
        if let Some(reply) = message.reply {
            client.publish(reply, ack_reply(&order)).await.unwrap();
        }
        cx.span().end();
    }
}

async fn rpc_handler(Json(order): Json<Order>) -> Json<Ack> {
    Json(Ack { id: order.id, ok: true })
}

async fn rpc_round(
    server: &NatsServer,
    requester: &async_nats::Client,
    variant: Variant,
    providers: &Providers,
    n: usize,
) -> Duration {
    let client = server.connect().await.unwrap();
    match variant {
        Variant::Raw | Variant::HandWritten => {
            let subscriber = client.subscribe(RPC).await.unwrap();
            let responder = match variant {
                Variant::Raw => tokio::spawn(rpc_raw_responder(client.clone(), subscriber)),
                _ => tokio::spawn(rpc_hand_written_responder(client.clone(), subscriber)),
            };
            wait_for_interest(requester).await;
            let elapsed = requests(requester, n).await;
            responder.abort();
            let _ = client.drain().await;
            elapsed
        }
        Variant::Toolkit | Variant::ToolkitBare => {
            let service =
                NatsService::new(client.clone()).subscribe_with(Subscription::new(RPC), rpc_handler);
            let started = if variant == Variant::Toolkit {
                tracing::dispatcher::with_default(&providers.dispatch, || service.start()).await
            } else {
                service.start().await
            }
            .unwrap();
            let running = started.spawn();
            let elapsed = requests(requester, n).await;
            running.stop().await.unwrap();
            let _ = client.drain().await;
            elapsed
        }
    }
}

/// Waits until a request to the RPC subject is answered: the responder listens.
async fn wait_for_interest(requester: &async_nats::Client) {
    for _ in 0..1000 {
        if requester.request_with_headers(RPC, traced_headers(), order_payload(0)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("the responder never answered");
}

// ---------------------------------------------------------------- C: publish

async fn publish_raw(client: &async_nats::Client, n: usize) -> Duration {
    let payload = order_payload(1);
    let headers = traced_headers();
    let started = Instant::now();
    for _ in 0..n {
        client.publish_with_headers("bench.pub", headers.clone(), payload.clone()).await.unwrap();
    }
    client.flush().await.unwrap();
    started.elapsed()
}

/// `n` messages in batches of 100 (`publish_batch`): a `create` span each, one
/// `send` span a batch.
async fn publish_batches(publisher: &Publisher, n: usize) -> Duration {
    let payload = order_payload(1);
    let started = Instant::now();
    for _ in 0..n / 100 {
        let batch = (0..100).map(|_| Outgoing::new("bench.pub", payload.clone()));
        let results = publisher.publish_batch(batch).await;
        assert!(results.iter().all(Result::is_ok));
    }
    publisher.client().flush().await.unwrap();
    started.elapsed()
}

/// C's variant (2): each publish traced by hand as the seed guide (§4.1) does,
/// through a function that takes the subject as its `&str` parameter (the
/// guide's `TracedPublisher::publish_with_trace`): a `send` PRODUCER span with
/// the attributes `Publisher::publish` records, its context injected into the
/// headers, ended after the publish. Careful otherwise: the tracer and the
/// connection's attributes read once, no `format!`, no extra header copies.
async fn publish_hand_traced(client: &async_nats::Client, n: usize) -> Duration {
    let hand = HandWritten::of(client);
    let payload = order_payload(1);
    let started = Instant::now();
    for _ in 0..n {
        hand_traced_publish(&hand, client, std::hint::black_box("bench.pub"), payload.clone()).await;
    }
    client.flush().await.unwrap();
    started.elapsed()
}

/// One publish of [`publish_hand_traced`]. The subject arrives at run time, as
/// it does in any publisher: the span's name, its destination and async-nats'
/// `Subject` are each made from it, as `Publisher::publish` makes them.
async fn hand_traced_publish(hand: &HandWritten, client: &async_nats::Client, subject: &str, payload: Bytes) {
    use nats_otel_runtime::propagation::HeaderInjector;
    let HandWritten { tracer, client_id, port } = hand;
    let mut name = String::with_capacity("send ".len() + subject.len());
    name.extend(["send ", subject]);
    let span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Producer)
        .with_attributes([
            KeyValue::new("messaging.system", "nats"),
            KeyValue::new("messaging.operation.name", "send"),
            KeyValue::new("messaging.operation.type", "send"),
            KeyValue::new("messaging.destination.name", subject.to_owned()),
            KeyValue::new("messaging.message.body.size", payload.len() as i64),
            KeyValue::new("messaging.client.id", client_id.clone()),
            KeyValue::new("server.address", "127.0.0.1"),
            KeyValue::new("server.port", *port),
        ])
        .start(tracer);
    let cx = opentelemetry::Context::current_with_span(span);
    let mut headers = HeaderMap::new();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut HeaderInjector(&mut headers)));
    client.publish_with_headers(async_nats::Subject::from(subject), headers, payload).await.unwrap();
    cx.span().end();
}

async fn publish_traced(publisher: &Publisher, n: usize) -> Duration {
    let payload = order_payload(1);
    let started = Instant::now();
    for _ in 0..n {
        publisher.publish("bench.pub", payload.clone()).await.unwrap();
    }
    publisher.client().flush().await.unwrap();
    started.elapsed()
}

// ---------------------------------------------------------------- reporting

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Results {
    rates: Vec<Vec<f64>>,
    rss: Vec<f64>,
}

impl Results {
    fn new(variants: usize) -> Self {
        Self { rates: vec![Vec::new(); variants], rss: vec![0.0; variants] }
    }

    fn print(&self, title: &str, labels: &[&str]) {
        println!("\n{title}");
        println!(
            "| variant | msgs/s (median) | vs (1), median of ratios [95 %] | vs (2), median of ratios [95 %] | peak RSS MiB |"
        );
        println!("|---|---:|---:|---:|---:|");
        for (i, label) in labels.iter().enumerate() {
            let to_hand = if labels.len() > 2 { self.ratio(i, 1) } else { "–".to_owned() };
            println!(
                "| {label} | {:.0} | {} | {} | {:.1} |",
                if self.rates[i].is_empty() { f64::NAN } else { median(self.rates[i].clone()) },
                self.ratio(i, 0),
                to_hand,
                self.rss[i]
            );
        }
        println!(
            "rounds: {:?}",
            self.rates.iter().map(|r| r.iter().map(|v| v.round()).collect::<Vec<_>>()).collect::<Vec<_>>()
        );
    }

    /// Row `a` against row `b`: the median of their per-round ratios, with its interval.
    fn ratio(&self, a: usize, b: usize) -> String {
        let (rows, of) = (&self.rates[a], &self.rates[b]);
        if rows.is_empty() || of.is_empty() {
            return "–".to_owned();
        }
        if a == b {
            return "1.00".to_owned();
        }
        median_with_interval(rows.iter().zip(of).map(|(x, y)| x / y).collect())
    }
}

// ---------------------------------------------------------------- main

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let n = env_usize("NATS_OTEL_BENCH_MESSAGES", 100_000);
    let rounds = env_usize("NATS_OTEL_BENCH_ROUNDS", 9);
    let backlog = env_usize("NATS_OTEL_BENCH_BACKLOG", 1_000_000);
    let only = std::env::var("NATS_OTEL_BENCH_ONLY").unwrap_or_default();
    let run_scenario = |s: &str| only.is_empty() || only.split(',').any(|o| o == s);
    install_w3c_propagators();
    let providers = Providers::new();
    let server = NatsServer::start().unwrap();
    let client = server.connect().await.unwrap();
    println!(
        "nats-otel benchmark: {n} messages x {rounds} rounds; nats-server {}; {} cores",
        client.server_info().version,
        std::thread::available_parallelism().map(|p| p.get()).unwrap_or(0)
    );

    if ["A", "A100", "E", "L"].into_iter().any(run_scenario) {
        let js = jetstream::new(client.clone());
        js.create_stream(stream::Config {
            name: STREAM.into(),
            subjects: vec![FILTER.into()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
        let headers = traced_headers();
        for chunk in (0..n as u64).collect::<Vec<_>>().chunks(1000) {
            let acks =
                futures_util::future::join_all(chunk.iter().map(|id| {
                    let js = js.clone();
                    let headers = headers.clone();
                    async move {
                        js.publish_with_headers(FILTER, headers, order_payload(*id)).await.unwrap().await
                    }
                }))
                .await;
            assert!(acks.iter().all(Result::is_ok));
        }
    }

    if run_scenario("A") {
        let js = jetstream::new(client.clone());
        let mut results = Results::new(4);
        for round in 0..rounds {
            for (v, variant) in round_order(round) {
                let name = format!("r{round}v{v}");
                let elapsed = js_round(&server, &js, &name, variant, &providers, n, false).await;
                results.rss[v] = results.rss[v].max(peak_rss_mib());
                results.rates[v].push(n as f64 / elapsed.as_secs_f64());
                providers.settle().await;
            }
        }
        results.print("A. JetStream consume + decode + ack", &VARIANTS.map(Variant::label));
    }

    if run_scenario("E") {
        otlp_export(&server, &jetstream::new(client.clone()), n, rounds).await;
    }

    if run_scenario("A100") {
        // A in batches of 100: hand-written batched loops against the toolkit's
        // batch handler (`Batch<Json<Order>>`, `batch_size = 100`).
        let js = jetstream::new(client.clone());
        let labels =
            ["(1) raw batched loop", "(2) hand-instrumented batched loop", "(3) nats-otel batch handler"];
        let mut results = Results::new(3);
        for round in 0..rounds {
            let order = if round.is_multiple_of(2) { [0, 1, 2] } else { [2, 1, 0] };
            for v in order.into_iter().filter(|&v| selected(v)) {
                let name = format!("batch{round}v{v}");
                let consumer = consumer(&js, &name).await;
                let consumer_client = server.connect().await.unwrap();
                if v == 0 {
                    uninstall_globals();
                } else {
                    providers.install_globals();
                }
                reset_peak_rss();
                let elapsed = match v {
                    0 | 1 => {
                        let (consumer, client) =
                            (bind(&consumer_client, &name).await, consumer_client.clone());
                        on_worker(async move { js_batched(consumer, &client, n, v == 1).await }).await
                    }
                    _ => {
                        let batches = bound(&name).batches(BATCH, BATCH_WAIT);
                        let dispatch = Some(&providers.dispatch);
                        js_toolkit_with(&consumer_client, batches, n, dispatch, js_batch_handler).await
                    }
                };
                results.rss[v] = results.rss[v].max(peak_rss_mib());
                results.rates[v].push(n as f64 / elapsed.as_secs_f64());
                drop(consumer);
                let _ = consumer_client.drain().await;
                js.get_stream(STREAM).await.unwrap().delete_consumer(&name).await.unwrap();
                providers.settle().await;
            }
        }
        results.print("A100. JetStream consume + decode + ack, in batches of 100", &labels);
    }

    if run_scenario("L") {
        // A's toolkit variant with one INFO line a message, formatted by
        // `tracing-subscriber`'s fmt layer into a sink: plain, then with the
        // trace id, span id and subject added (`LogContext`).
        let js = jetstream::new(client.clone());
        let dispatches = [false, true].map(|joined| providers.with_log_lines(joined));
        let mut results = Results::new(2);
        for round in 0..rounds {
            let order = if round.is_multiple_of(2) { [0, 1] } else { [1, 0] };
            for v in order.into_iter().filter(|&v| selected(v)) {
                let name = format!("log{round}v{v}");
                let consumer = consumer(&js, &name).await;
                let consumer_client = server.connect().await.unwrap();
                providers.install_globals();
                reset_peak_rss();
                let elapsed = js_toolkit_with(
                    &consumer_client,
                    bound(&name),
                    n,
                    Some(&dispatches[v]),
                    js_logging_handler,
                )
                .await;
                results.rss[v] = results.rss[v].max(peak_rss_mib());
                results.rates[v].push(n as f64 / elapsed.as_secs_f64());
                drop(consumer);
                let _ = consumer_client.drain().await;
                js.get_stream(STREAM).await.unwrap().delete_consumer(&name).await.unwrap();
                providers.settle().await;
            }
        }
        results.print(
            "L. A (3) with a log line a message",
            &["(3) + fmt line", "(3) + fmt line with LogContext (trace id, span id, subject)"],
        );
    }

    if run_scenario("B") {
        let requester = server.connect().await.unwrap();
        let mut results = Results::new(4);
        for round in 0..rounds {
            for (v, variant) in round_order(round) {
                if matches!(variant, Variant::HandWritten | Variant::Toolkit) {
                    providers.install_globals();
                } else {
                    uninstall_globals();
                }
                reset_peak_rss();
                let elapsed = rpc_round(&server, &requester, variant, &providers, n).await;
                results.rss[v] = results.rss[v].max(peak_rss_mib());
                results.rates[v].push(n as f64 / elapsed.as_secs_f64());
                providers.settle().await;
            }
        }
        results.print("B. Core request-reply, 64 in flight", &VARIANTS.map(Variant::label));
    }

    if run_scenario("C") {
        let mut results = Results::new(7);
        let publisher_client = server.connect().await.unwrap();
        // Head sampling as production runs it: 1 trace in 100, children
        // following their parent. Its publisher resolves this provider's tracer
        // and, as every row's, the metrics provider.
        let head_sampled_provider = SdkTracerProvider::builder()
            .with_sampler(opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
                opentelemetry_sdk::trace::Sampler::TraceIdRatioBased(0.01),
            )))
            .with_batch_exporter(NoopSpans)
            .build();
        providers.install_globals();
        global::set_tracer_provider(head_sampled_provider.clone());
        let head_sampled = Publisher::new(publisher_client.clone());
        providers.install_globals();
        let publisher = tracing::dispatcher::with_default(&providers.dispatch, || {
            Publisher::new(publisher_client.clone())
        });
        // Broker tracing: the header on every publish, or on 1 in 100; the
        // servers' reports go to a subject nobody collects here, so the rows
        // show the publisher's and the server's share, not a collector's.
        let broker = |ratio| {
            publisher.clone().broker_tracing(BrokerTracing::new("bench.broker").unwrap().ratio(ratio))
        };
        let (broker_all, broker_some) = (broker(1.0), broker(0.01));
        for round in 0..rounds {
            // Rows of the table, (row, variant): (1) raw, then nats-otel as
            // variant (3) as in A and B, with broker tracing off, at 100 % and
            // at 1 %, and in batches of 100. The order rotates between rounds.
            let rows = [(0, 0), (1, 2), (2, 2), (3, 2), (4, 2), (5, 1), (6, 2)];
            let mut order = rows.to_vec();
            order.rotate_left(round % rows.len());
            for i in
                order.into_iter().filter(|&(row, v)| selected(v) && row_selected(row)).map(|(row, _)| row)
            {
                reset_peak_rss();
                let traced =
                    |publisher| publish_traced(publisher, n).with_subscriber(providers.dispatch.clone());
                let elapsed = match i {
                    0 => publish_raw(&publisher_client, n).await,
                    1 => traced(&publisher).await,
                    2 => traced(&broker_all).await,
                    3 => traced(&broker_some).await,
                    4 => publish_batches(&publisher, n).with_subscriber(providers.dispatch.clone()).await,
                    5 => publish_hand_traced(&publisher_client, n).await,
                    _ => traced(&head_sampled).await,
                };
                results.rss[i] = results.rss[i].max(peak_rss_mib());
                results.rates[i].push(n as f64 / elapsed.as_secs_f64());
                // Also gives the server time to write the last row's reports.
                providers.settle().await;
            }
        }
        // Here "vs (2)" compares with the second row: the same publisher
        // without broker tracing; the hand-traced row is the issue's (2).
        results.print(
            "C. Core publish",
            &[
                "(1) raw publish_with_headers",
                "(3) Publisher::publish, telemetry on",
                "(3) + broker tracing, 100 %",
                "(3) + broker tracing, 1 %",
                "(3) Publisher::publish_batch, 100 a batch",
                "(2) hand-traced publish (seed guide 4.1)",
                "(3) Publisher::publish, head-sampled 1 %",
            ],
        );
        println!(
            "Publisher::publish vs hand-traced: {} (issue 21: >= 1.0); head-sampled 1 % vs raw: {} (>= 0.90)",
            results.ratio(1, 5),
            results.ratio(6, 0)
        );
        let _ = head_sampled_provider.shutdown();
    }

    if run_scenario("D") && backlog > 0 {
        let js = jetstream::new(client.clone());
        js.create_stream(stream::Config {
            name: "BACKLOG".into(),
            subjects: vec!["backlog.orders".into()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
        let headers = traced_headers();
        let payload = order_payload(7);
        for _ in 0..backlog / 1000 {
            let acks =
                futures_util::future::join_all(
                    (0..1000).map(|_| {
                        let js = js.clone();
                        let headers = headers.clone();
                        let payload = payload.clone();
                        async move {
                            js.publish_with_headers("backlog.orders", headers, payload).await.unwrap().await
                        }
                    }),
                )
                .await;
            assert!(acks.iter().all(Result::is_ok));
        }
        js.get_stream("BACKLOG")
            .await
            .unwrap()
            .create_consumer(pull::Config { durable_name: Some("drain".into()), ..Default::default() })
            .await
            .unwrap();
        providers.install_globals();
        let consumer_client = server.connect().await.unwrap();
        reset_peak_rss();
        let done = Arc::new(Done::default());
        done.reset(backlog / 1000 * 1000);
        let service = NatsService::new(consumer_client.clone())
            .state(done.clone())
            .consume(JetStreamConsumer::new("BACKLOG", "drain").create(false), js_handler);
        let started =
            tracing::dispatcher::with_default(&providers.dispatch, || service.start()).await.unwrap();
        let clock = Instant::now();
        let running = started.spawn();
        done.wait().await;
        let elapsed = clock.elapsed();
        running.stop().await.unwrap();
        println!(
            "\nD. {} message backlog, nats-otel with telemetry on: {:.0} msgs/s, peak RSS {:.1} MiB",
            backlog / 1000 * 1000,
            (backlog / 1000 * 1000) as f64 / elapsed.as_secs_f64(),
            peak_rss_mib()
        );
    }
}

/// Whether variant index `v` runs (`NATS_OTEL_BENCH_VARIANTS=1,3`, 1-based; all by default).
fn selected(v: usize) -> bool {
    match std::env::var("NATS_OTEL_BENCH_VARIANTS") {
        Ok(list) => list.split(',').any(|x| x.trim() == (v + 1).to_string()),
        Err(_) => true,
    }
}

/// Whether row `row` of C runs (`NATS_OTEL_BENCH_ROWS=2,6`, 1-based; all by default):
/// to profile one row alone.
fn row_selected(row: usize) -> bool {
    match std::env::var("NATS_OTEL_BENCH_ROWS") {
        Ok(list) => list.split(',').any(|x| x.trim() == (row + 1).to_string()),
        Err(_) => true,
    }
}

/// A consumer bound on its own connection, for the hand-written loops.
async fn bind(client: &async_nats::Client, name: &str) -> PullConsumer {
    jetstream::new(client.clone()).get_stream(STREAM).await.unwrap().get_consumer(name).await.unwrap()
}

use tracing::instrument::WithSubscriber as _;
