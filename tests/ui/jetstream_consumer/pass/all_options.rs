use nats_otel_runtime::prelude::*;

#[derive(Deserialize)]
struct Order {
    id: u64,
}

#[jetstream_consumer(
    stream = "ORDERS",
    durable = "billing",
    filter = ["orders.*.created", "orders.*.updated"],
    deliver = "new",
    ack_wait = "30s",
    max_deliver = 5,
    backoff = ["250ms", "10s", "1m"],
    max_ack_pending = 64,
    concurrency = 16,
    ack = "confirmed",
    create = true,
    dead_letter = "orders.dead",
    trace = "link",
    settle = "event"
)]
async fn bill(Json(order): Json<Order>, info: JetStreamInfo) -> Result<(), Permanent<ServiceError>> {
    let _ = (order.id, info.delivered);
    Ok(())
}

#[jetstream_consumer(stream = "ORDERS", durable = "audit", filter = "orders.>", create = false)]
async fn audit(_body: Bytes) {}

fn main() {
    let client: Option<async_nats::Client> = None;
    if let Some(client) = client {
        let _service = NatsService::new(client).handler(bill).handler(audit);
    }
}
