//! Batch publishing: a hundred orders in one traced operation, on core NATS and
//! on JetStream (every ack awaited). Each message gets a `create` span whose
//! context it carries; one `send` span links them and counts what failed.
//!
//! ```sh
//! OTEL_TRACES_EXPORTER=console cargo run -p examples --example batch_publish
//! ```

use async_nats::jetstream::{self, stream};
use nats_otel_runtime::Publisher;
use nats_otel_runtime::publisher::Outgoing;
use tracing::Instrument as _;

#[derive(serde::Serialize)]
struct Order {
    id: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = nats_otel_runtime::telemetry::init()?;
    let server = examples::server()?;
    let client = async_nats::connect(&server.url).await?;
    jetstream::new(client.clone())
        .create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await?;
    let publisher = Publisher::new(client);

    async {
        // Core: fire and forget, one result per message.
        let events = (1..=3).map(|id| Outgoing::json(format!("events.{id}"), &Order { id }));
        let sent = publisher.publish_batch(events.collect::<Result<Vec<_>, _>>()?).await;
        println!("core: {} of {} sent", sent.iter().filter(|r| r.is_ok()).count(), sent.len());

        // JetStream: ids make a retried batch safe; one message is refused.
        let mut orders: Vec<Outgoing> = (1..=100)
            .map(|id| {
                Outgoing::json("orders.placed", &Order { id }).map(|m| m.message_id(format!("order-{id}")))
            })
            .collect::<Result<_, _>>()?;
        orders.push(Outgoing::new("orders.placed", "late").expected_stream("ARCHIVE"));
        let acks = publisher.publish_batch_to_stream(orders).await;
        for (index, failed) in acks.iter().enumerate().filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e))) {
            println!("message {index} was not stored: {failed:#}");
        }
        println!("jetstream: {} of {} stored", acks.iter().filter(|r| r.is_ok()).count(), acks.len());
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .instrument(tracing::info_span!("nightly import"))
    .await?;
    drop(telemetry);
    Ok(())
}
