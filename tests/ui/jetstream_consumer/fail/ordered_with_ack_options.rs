use nats_otel_runtime::prelude::*;

#[jetstream_consumer(stream = "ORDERS", ordered = true, durable = "replay", max_deliver = 3, dead_letter = "orders.dead")]
async fn replay(_body: String) {}

fn main() {}
