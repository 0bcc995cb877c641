//! A JetStream pipeline across three handlers, one trace end to end:
//! `orders.placed` → validate → `orders.validated` → charge → `orders.charged` →
//! notify. Each handler publishes the next step with the traced publisher, so the
//! whole journey of an order is one trace.
//!
//! ```sh
//! OTEL_TRACES_EXPORTER=console cargo run -p examples --example pipeline
//! ```

use async_nats::jetstream::{self, stream};
use nats_otel_runtime::prelude::*;
use tracing::Instrument as _;

#[derive(Debug, Clone, Deserialize, Serialize)]
struct Order {
    id: u64,
    cents: u64,
}

#[jetstream_consumer(stream = "ORDERS", durable = "validate", filter = "orders.placed")]
async fn validate(Json(order): Json<Order>, State(out): State<Publisher>) -> Result<(), ServiceError> {
    if order.cents == 0 {
        return Err(ServiceError::new(422, "empty order"));
    }
    out.publish_json_to_stream("orders.validated", Default::default(), &order)
        .await
        .map_err(|e| ServiceError::new(503, format!("{e:#}")))?;
    Ok(())
}

#[jetstream_consumer(stream = "ORDERS", durable = "charge", filter = "orders.validated")]
async fn charge(Json(order): Json<Order>, State(out): State<Publisher>) -> Result<(), ServiceError> {
    tracing::info!(order.id = order.id, cents = order.cents, "charging card");
    out.publish_json_to_stream("orders.charged", Default::default(), &order)
        .await
        .map_err(|e| ServiceError::new(503, format!("{e:#}")))?;
    Ok(())
}

#[jetstream_consumer(stream = "ORDERS", durable = "notify", filter = "orders.charged")]
async fn notify(Json(order): Json<Order>, State(done): State<tokio::sync::mpsc::Sender<u64>>) {
    tracing::info!(order.id = order.id, "emailing receipt");
    let _ = done.send(order.id).await;
}

#[derive(Clone)]
struct App {
    publisher: Publisher,
    done: tokio::sync::mpsc::Sender<u64>,
}

impl nats_otel_runtime::FromRef<App> for Publisher {
    fn from_ref(app: &App) -> Self {
        app.publisher.clone()
    }
}

impl nats_otel_runtime::FromRef<App> for tokio::sync::mpsc::Sender<u64> {
    fn from_ref(app: &App) -> Self {
        app.done.clone()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = nats_otel_runtime::telemetry::init()?;
    let server = examples::server()?;
    let client = async_nats::connect(&server.url).await?;
    jetstream::new(client.clone())
        .get_or_create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await?;

    let publisher = Publisher::new(client.clone());
    let (done, mut finished) = tokio::sync::mpsc::channel(8);
    let app = App { publisher: publisher.clone(), done };
    let service = NatsService::with_state(client, app)
        .handler(validate)
        .handler(charge)
        .handler(notify)
        .start()
        .await?;
    let running = service.spawn();

    publisher
        .publish_json_to_stream("orders.placed", Default::default(), &Order { id: 7, cents: 4_200 })
        .instrument(tracing::info_span!("place order"))
        .await?;
    let id = finished.recv().await;
    println!("order {id:?} went through validate → charge → notify\n");

    running.stop().await?;
    drop(telemetry);
    Ok(())
}
