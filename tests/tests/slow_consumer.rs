//! A core subscriber that cannot keep up: async-nats drops messages; the service
//! counts them (metric), warns (rate-limited), and keeps serving. A binary of its
//! own: the meter provider is global.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::*;
use nats_otel_runtime::prelude::*;
use opentelemetry_sdk::metrics::InMemoryMetricExporter;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use tokio::sync::Semaphore;

#[derive(Clone)]
struct Firehose {
    gate: Arc<Semaphore>,
    handled: Arc<std::sync::atomic::AtomicUsize>,
}

#[nats_subscribe("firehose", concurrency = 1)]
async fn slow(State(firehose): State<Firehose>) {
    let _ = firehose.gate.acquire().await.unwrap();
    firehose.handled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

/// Collects the messages of WARN events.
#[derive(Clone, Default)]
struct Warnings(Arc<std::sync::Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        if *event.metadata().level() == tracing::Level::WARN {
            let mut message = Message(String::new());
            event.record(&mut message);
            self.0.lock().unwrap().push(message.0);
        }
    }
}

fn dropped(exporter: &InMemoryMetricExporter) -> u64 {
    let exported = exporter.get_finished_metrics().unwrap();
    let Some(last) = exported.last() else { return 0 };
    last.scope_metrics()
        .flat_map(|s| s.metrics())
        .filter(|m| m.name() == "messaging.nats.dropped.messages")
        .map(|m| -> u64 {
            match m.data() {
                AggregatedMetrics::U64(MetricData::Sum(sum)) => sum.data_points().map(|p| p.value()).sum(),
                other => panic!("unexpected {other:?}"),
            }
        })
        .sum()
}

#[tokio::test]
async fn dropped_messages_are_counted_warned_about_and_the_service_survives() {
    use tracing_subscriber::layer::SubscriberExt;
    let (exporter, provider) = install_metrics();
    let warnings = Warnings::default();
    let _logs = tracing::subscriber::set_default(tracing_subscriber::registry().with(warnings.clone()));
    let server = nats_otel_runtime::testing::NatsServer::start().unwrap();
    let publisher = server.connect().await.unwrap();

    // A tiny subscription buffer, and a handler blocked until released.
    let events = nats_otel_runtime::ClientEvents::new();
    let client = events
        .attach(async_nats::ConnectOptions::new().subscription_capacity(4))
        .connect(server.url())
        .await
        .unwrap();
    let firehose = Firehose { gate: Arc::new(Semaphore::new(0)), handled: Arc::default() };
    let running = spawn(NatsService::new(client).events(&events).state(firehose.clone()).handler(slow)).await;

    for i in 0..200 {
        publisher.publish("firehose", format!("{i}").into()).await.unwrap();
    }
    publisher.flush().await.unwrap();
    // Dropping is reported as events; wait until the metric shows it.
    within("drops counted", async {
        loop {
            provider.force_flush().unwrap();
            if dropped(&exporter) > 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;

    // One warning for the whole burst: the events are rate-limited.
    let slow_warnings = warnings.0.lock().unwrap().iter().filter(|w| w.contains("slow consumer")).count();
    assert_eq!(slow_warnings, 1, "{:?}", warnings.0.lock().unwrap());

    // Released, the handler takes what was kept; the service is still serving.
    firehose.gate.add_permits(1_000);
    running.stop().await.unwrap();
    let handled = firehose.handled.load(std::sync::atomic::Ordering::SeqCst);
    provider.force_flush().unwrap();
    let lost = dropped(&exporter);
    assert!(handled > 0 && handled < 200, "handled {handled}");
    // async-nats reports each drop with a `try_send` of an event, which a burst can
    // itself drop: the count is a lower bound, never an over-count.
    assert!(lost > 0 && handled as u64 + lost <= 200, "handled {handled}, counted {lost} dropped");
}
