use nats_otel_runtime::prelude::*;

#[derive(Deserialize)]
struct Order {
    id: u64,
}

#[jetstream_consumer(stream = "ORDERS", durable = "bulk", batch_size = 100)]
async fn store(order: Json<Order>, _info: JetStreamInfo) {
    let _ = order.0.id;
}

fn main() {}
