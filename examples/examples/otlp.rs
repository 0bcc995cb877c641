//! Export traces and metrics to an OpenTelemetry collector over OTLP.
//!
//! ```sh
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 OTEL_SERVICE_NAME=otlp-demo \
//!     cargo run -p examples --example otlp
//! ```
//!
//! Everything comes from the standard environment through
//! `nats_otel_runtime::telemetry::init()`: endpoint, protocol (`http/protobuf` by
//! default, or `grpc` with port 4317), service name, resource attributes, sampler.

use nats_otel_runtime::prelude::*;

#[nats_subscribe("greet.*", queue = "greeters")]
async fn greet(name: String) -> String {
    tracing::info!(%name, "greeting");
    format!("hello, {name}")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() {
        eprintln!(
            "set OTEL_EXPORTER_OTLP_ENDPOINT (e.g. http://127.0.0.1:4318) to export; running without export"
        );
    }
    let telemetry = nats_otel_runtime::telemetry::init()?;
    let server = examples::server()?;
    let client = async_nats::connect(&server.url).await?;
    let service = NatsService::new(client.clone()).handler(greet).start().await?;
    let running = service.spawn();

    let publisher = Publisher::new(client);
    for name in ["ada", "grace", "edsger"] {
        let reply = publisher.request(format!("greet.{name}"), name).await?;
        println!("{}", String::from_utf8_lossy(&reply.payload));
    }
    running.stop().await?;
    drop(telemetry); // flushes spans and metrics to the collector
    Ok(())
}
