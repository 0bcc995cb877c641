//! A batch handler: orders stored a hundred at a time, in one `process` span
//! per batch that links to each order's trace. Each order is settled on its
//! own: the handler fails single orders (`BatchOutcome`), an order that is not
//! JSON never reaches it, and both are dead-lettered alone; the rest are acked.
//!
//! ```sh
//! OTEL_TRACES_EXPORTER=console cargo run -p examples --example batch_handler
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use nats_otel_runtime::prelude::*;

/// An order placed.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct Order {
    id: u64,
    cents: i64,
}

/// The orders stored, as a database would hold them.
#[derive(Debug, Clone, Default)]
pub struct Warehouse(Arc<Mutex<Vec<u64>>>);

/// Stores each batch at once; an order with a negative amount is refused alone.
#[jetstream_consumer(
    stream = "ORDERS",
    durable = "warehouse",
    batch_size = 100,
    batch_wait = "50ms",
    dead_letter = "dead.orders"
)]
async fn store(
    orders: Batch<Json<Order>>,
    State(warehouse): State<Warehouse>,
) -> BatchOutcome<Permanent<ServiceError>> {
    let mut outcome = BatchOutcome::new();
    let mut stored = Vec::with_capacity(orders.len());
    for order in &orders {
        if order.0.cents < 0 {
            let refused = ServiceError::new(422, format!("order {} has a negative amount", order.0.id));
            outcome.fail(order.id(), Permanent(refused));
        } else {
            stored.push(order.0.id);
        }
    }
    tracing::info!(batch = orders.len(), stored = stored.len(), "stored a batch");
    warehouse.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(stored);
    outcome
}

/// The service: what it serves here, and what `--example asyncapi` describes.
pub fn service(service: NatsService, warehouse: Warehouse) -> NatsService<Warehouse> {
    service.name("warehouse").version("0.1.0").state(warehouse).handler(store)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = nats_otel_runtime::telemetry::init()?;
    let server = examples::server()?;
    let client = async_nats::connect(&server.url).await?;
    let js = jetstream::new(client.clone());
    for (name, subjects) in [("ORDERS", "orders.>"), ("DEAD", "dead.>")] {
        js.create_stream(stream::Config {
            name: name.into(),
            subjects: vec![subjects.into()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await?;
    }

    let warehouse = Warehouse::default();
    let running = service(NatsService::new(client.clone()), warehouse.clone()).start().await?.spawn();
    let publisher = Publisher::new(client.clone());
    for id in 1..=250u64 {
        let cents = if id % 100 == 0 { -1 } else { 1250 };
        publisher.publish_to_stream("orders.placed", format!(r#"{{"id":{id},"cents":{cents}}}"#)).await?;
    }
    publisher.publish_to_stream("orders.placed", "not json").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.stop().await?;

    let stored = warehouse.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len();
    let dead = js.get_stream("DEAD").await?.info().await?.state.messages;
    println!(
        "stored {stored} orders; {dead} dead letters (orders 100 and 200, and the one that is not JSON)"
    );
    drop(telemetry);
    Ok(())
}
