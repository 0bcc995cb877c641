use nats_otel_runtime::prelude::*;

#[jetstream_consumer(stream = "ORDERS", durable = "bulk")]
async fn store(orders: Batch<String>) {
    let _ = orders.len();
}

fn main() {}
