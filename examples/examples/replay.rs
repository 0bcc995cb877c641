//! Replay with an ordered consumer: rebuild a projection from every order in the
//! stream, once each and in stream order, then keep it current. Each instance
//! gets its own ephemeral consumer; nothing is acked. Start-up declares the
//! stream it reads, traced.
//!
//! ```sh
//! OTEL_TRACES_EXPORTER=console cargo run -p examples --example replay
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use nats_otel_runtime::prelude::*;

/// Orders per region, rebuilt from the stream.
#[derive(Clone, Default)]
struct Projection(Arc<Mutex<std::collections::BTreeMap<String, u64>>>);

/// Every order placed, in the order the stream stored them.
#[jetstream_consumer(stream = "ORDERS", ordered = true, filter = "orders.{region}.placed")]
async fn project(State(projection): State<Projection>, region: String, info: JetStreamInfo) {
    let mut counts = projection.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    *counts.entry(region).or_default() += 1;
    tracing::debug!(sequence = info.stream_sequence, "projected");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = nats_otel_runtime::telemetry::init()?;
    let server = examples::server()?;
    let client = async_nats::connect(&server.url).await?;
    let orders = stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        storage: stream::StorageType::Memory,
        ..Default::default()
    };
    // History first: the replay starts from the beginning of the stream.
    let js = jetstream::new(client.clone());
    js.create_stream(orders.clone()).await?;
    for (i, region) in ["eu", "us", "eu", "apac", "eu"].into_iter().enumerate() {
        js.publish(format!("orders.{region}.placed"), format!("{i}").into()).await?.await?;
    }

    let projection = Projection::default();
    let running = NatsService::with_state(client, projection.clone())
        .stream(orders) // declared: created or updated at start, traced
        .handler(project)
        .start()
        .await?
        .spawn();
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!(
        "orders per region: {:?}",
        projection.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    );
    running.stop().await?;
    drop(telemetry);
    Ok(())
}
