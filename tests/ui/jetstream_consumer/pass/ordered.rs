use nats_otel_runtime::prelude::*;

#[derive(Deserialize)]
struct Order {
    id: u64,
}

/// Replay for a projection: every order once, in stream order.
#[jetstream_consumer(stream = "ORDERS", ordered = true, filter = "orders.{region}.placed", deliver = "all")]
async fn project(region: String, Json(order): Json<Order>, info: JetStreamInfo) {
    let _ = (region, order.id, info.stream_sequence);
}

fn main() {
    let client: Option<async_nats::Client> = None;
    if let Some(client) = client {
        let _ = NatsService::new(client).handler(project);
    }
}
