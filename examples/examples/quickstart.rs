//! Quickstart: a subscriber and a request-reply handler, a few traced publishes
//! and requests, each trace printed as a tree (on stderr) with the servers each
//! message crossed (broker tracing).
//!
//! ```sh
//! OTEL_TRACES_EXPORTER=console cargo run -p examples --example quickstart
//! ```
//!
//! Without `NATS_URL` it starts a throwaway nats-server (from `PATH`). Telemetry
//! is the library's `telemetry::init()`: `OTEL_TRACES_EXPORTER=console` prints
//! the trees; with `OTEL_EXPORTER_OTLP_ENDPOINT` instead, spans go to that
//! collector over OTLP. Its AsyncAPI document: `cargo run -p examples --example asyncapi`.

use nats_otel_runtime::broker::BrokerTracing;
use nats_otel_runtime::broker_trace::Collector;
use nats_otel_runtime::prelude::*;
use schemars::JsonSchema;
use tracing::Instrument as _;

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct OrderPlaced {
    id: u64,
    region: String,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct QuoteRequest {
    sku: String,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct Quote {
    sku: String,
    cents: u64,
}

/// Fire-and-forget events, load-balanced across the `shipping` queue group.
#[nats_subscribe("orders.*", queue = "shipping")]
async fn ship(Json(order): Json<OrderPlaced>, subject: Subject) {
    tracing::info!(order.id = order.id, %subject, "scheduling shipment");
}

/// Request-reply: `Ok` is the reply, `Err` a NATS service error with a code.
#[nats_subscribe("quotes.get", queue = "pricing")]
async fn quote(Json(req): Json<QuoteRequest>) -> Result<Json<Quote>, ServiceError> {
    match req.sku.as_str() {
        "A1" => Ok(Json(Quote { sku: req.sku, cents: 1250 })),
        other => Err(ServiceError::new(404, format!("unknown sku {other}"))),
    }
}

/// The service: named (so `nats micro ls` finds it), with its handlers. One
/// function for serving and for the contract (see the `asyncapi` example).
pub fn service(service: NatsService) -> NatsService {
    service.name("quickstart").version("0.1.0").handler(ship).handler(quote)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The OTEL_* environment: trees on stderr with OTEL_TRACES_EXPORTER=console,
    // OTLP with OTEL_EXPORTER_OTLP_ENDPOINT. Logs go to stderr (RUST_LOG).
    let telemetry = nats_otel_runtime::telemetry::init()?;
    // $NATS_URL, or a throwaway local nats-server.
    let server = examples::server()?;
    println!("nats-otel quickstart: connected to {}", server.url);
    let client = async_nats::connect(&server.url).await?;

    // The broker inside the trace: nats-server (2.11+) reports each traced
    // message's path, recorded as `nats-server …` spans under its `send` span.
    let broker = Collector::new(client.clone(), "quickstart.broker-traces").start().await?;

    // The service, live before we publish.
    let service = service(NatsService::new(client.clone())).start().await?;
    let running = service.spawn();

    // A client side, in a span of its own, like an HTTP handler would be.
    let publisher =
        Publisher::new(client.clone()).broker_tracing(BrokerTracing::new("quickstart.broker-traces")?);
    async {
        for (id, region) in [(1, "eu"), (2, "us")] {
            publisher
                .publish_json(format!("orders.{region}"), &OrderPlaced { id, region: region.into() })
                .await?;
        }
        let quote: Quote = publisher.request_json("quotes.get", &QuoteRequest { sku: "A1".into() }).await?;
        println!("quote for {}: {} cents", quote.sku, quote.cents);
        let missing =
            publisher.request_json::<_, Quote>("quotes.get", &QuoteRequest { sku: "Z9".into() }).await;
        println!(
            "quote for Z9: {}",
            missing.map(|_| "found".to_owned()).unwrap_or_else(|e| format!("{e:#}"))
        );
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .instrument(tracing::info_span!("checkout"))
    .await?;

    // Graceful stop: in-flight handlers finish, replies are flushed.
    running.stop().await?;
    broker.stop().await;
    drop(telemetry); // prints the traces still waiting (or flushes to the collector)
    Ok(())
}
