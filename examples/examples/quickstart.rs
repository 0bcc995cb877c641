//! Quickstart: a subscriber and a request-reply handler, a few traced publishes
//! and requests, then the traces printed as a tree.
//!
//! ```sh
//! cargo run -p examples --example quickstart
//! ```
//!
//! Without `NATS_URL` it starts a throwaway nats-server (from `PATH`). With
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans go to that collector over OTLP instead
//! of the terminal.

use nats_otel_runtime::prelude::*;
use nats_otel_runtime::testing::{NatsServer, install_w3c_propagators};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, Serialize, Deserialize)]
struct OrderPlaced {
    id: u64,
    region: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct QuoteRequest {
    sku: String,
}

#[derive(Debug, Serialize, Deserialize)]
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Telemetry: OTLP when a collector is configured, else in memory for the tree.
    install_w3c_propagators();
    let memory = InMemorySpanExporter::default();
    let provider = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(_) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().build()?;
            SdkTracerProvider::builder().with_batch_exporter(exporter).build()
        }
        Err(_) => SdkTracerProvider::builder().with_simple_exporter(memory.clone()).build(),
    };
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("quickstart")))
        .init();

    // A server: $NATS_URL, or a throwaway local one.
    let local = match std::env::var("NATS_URL") {
        Ok(_) => None,
        Err(_) => Some(NatsServer::start()?),
    };
    let url = match &local {
        Some(server) => server.url(),
        None => std::env::var("NATS_URL")?,
    };
    println!("nats-otel quickstart: connected to {url}");
    let client = async_nats::connect(&url).await?;

    // The service, live before we publish.
    let service = Service::new(client.clone()).handler(ship).handler(quote).start().await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(service.run_until(async move {
        let _ = stopped.await;
    }));

    // A client side, in a span of its own, like an HTTP handler would be.
    let publisher = Publisher::new(client.clone());
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
        println!("quote for Z9: {}", missing.map(|_| "found".to_owned()).unwrap_or_else(|e| e.to_string()));
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .instrument(tracing::info_span!("checkout"))
    .await?;

    // Graceful stop: in-flight handlers finish, replies are flushed.
    let _ = stop.send(());
    running.await??;
    provider.force_flush()?;

    if std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_ok() {
        println!("spans exported over OTLP");
    } else {
        println!("\n{}", nats_otel_runtime::tree::render(&memory.get_finished_spans()?, true));
    }
    provider.shutdown()?;
    Ok(())
}

use tracing::Instrument as _;
