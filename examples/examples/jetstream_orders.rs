//! JetStream pipeline: a publisher, a consumer with retries and a dead-letter
//! subject, and one trace across them printed as a tree.
//!
//! ```sh
//! cargo run -p examples --example jetstream_orders
//! ```
//!
//! Order 1 is billed at once. Order 2 fails its first delivery, is nak'ed with the
//! backoff delay and billed on the retry. Order 3 fails every time: after
//! `max_deliver` deliveries it is published to `orders.dead` (with its trace
//! context and why it failed) and termed. A payload that is not JSON is poison:
//! termed at once and dead-lettered, never redelivered.
//!
//! Its AsyncAPI document: `cargo run -p examples --example asyncapi`.

use async_nats::jetstream::{self, stream};
use nats_otel_runtime::prelude::*;
use nats_otel_runtime::publisher::StreamPublish;
use nats_otel_runtime::testing::install_w3c_propagators;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use schemars::JsonSchema;
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct OrderPlaced {
    id: u64,
    cents: u64,
}

#[derive(Debug)]
enum BillingError {
    CardDeclined,
    GatewayDown,
}

impl std::fmt::Display for BillingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::CardDeclined => "card declined",
            Self::GatewayDown => "payment gateway unavailable",
        })
    }
}

impl HandlerError for BillingError {}

/// Bills orders; retried with backoff, dead-lettered after three deliveries.
#[jetstream_consumer(stream = "ORDERS", durable = "billing", filter = "orders.*.placed",
                     max_deliver = 3, backoff = ["200ms", "400ms"], dead_letter = "orders.dead")]
async fn bill(Json(order): Json<OrderPlaced>, info: JetStreamInfo) -> Result<(), BillingError> {
    tracing::info!(order.id = order.id, delivery = info.delivered, "billing");
    match (order.id, info.delivered) {
        (2, 1) => Err(BillingError::GatewayDown),
        (3, _) => Err(BillingError::CardDeclined),
        _ => Ok(()),
    }
}

/// Reads the dead letters back from the stream that stores them. (Not a core
/// subscriber on `orders.dead`: a letter is a JetStream publish, and a core
/// handler's answer would race the stream's acknowledgement.)
#[jetstream_consumer(stream = "DEAD_ORDERS", durable = "dead-watch")]
async fn dead_letters(headers: HeaderMap) {
    let header = |name: &str| headers.get(name).map(|v| v.as_str().to_owned()).unwrap_or_default();
    tracing::warn!(subject = header("Nats-Otel-Subject"), error = header("Nats-Otel-Error"), "dead letter");
}

/// The service: the billing consumer and the dead-letter watcher. One function
/// for serving and for the contract (see the `asyncapi` example).
pub fn service(service: NatsService) -> NatsService {
    service.name("orders").version("0.1.0").handler(bill).handler(dead_letters)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    install_w3c_propagators();
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    opentelemetry::global::set_tracer_provider(provider.clone()); // nats-otel's spans
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("jetstream_orders")))
        .with(nats_otel_runtime::span_events::SpanEvents::new())
        .init();

    let server = examples::server()?;
    let client = async_nats::connect(&server.url).await?;
    jetstream::new(client.clone())
        .get_or_create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.*.placed".into()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await?;
    // Letters are stored here; a message is termed only once its letter is.
    jetstream::new(client.clone())
        .get_or_create_stream(stream::Config {
            name: "DEAD_ORDERS".into(),
            subjects: vec!["orders.dead".into()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await?;

    let service = service(NatsService::new(client.clone())).start().await?;
    let running = service.spawn();

    let publisher = Publisher::new(client.clone());
    async {
        for id in 1..=3 {
            let ack = publisher
                .publish_json_to_stream(
                    "orders.eu.placed",
                    StreamPublish::new().message_id(format!("order-{id}")),
                    &OrderPlaced { id, cents: 1250 * id },
                )
                .await?;
            println!("order {id} stored as ORDERS #{}", ack.sequence);
        }
        publisher.publish_to_stream("orders.eu.placed", "not json").await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .instrument(tracing::info_span!("checkout"))
    .await?;

    // Wait until every message is settled: 1 ack + (nak, ack) + (nak, nak, term) + term.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while settled(&exporter) < 7 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    running.stop().await?;
    provider.force_flush()?;
    println!("\n{}", nats_otel_runtime::tree::render(&exporter.get_finished_spans()?, true));
    Ok(())
}

/// How many settle spans have finished.
fn settled(exporter: &InMemorySpanExporter) -> usize {
    let spans = exporter.get_finished_spans().unwrap_or_default();
    spans.iter().filter(|s| ["ack ", "nak ", "term "].iter().any(|p| s.name.starts_with(p))).count()
}
