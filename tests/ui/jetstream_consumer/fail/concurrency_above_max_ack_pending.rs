use nats_otel_runtime::prelude::*;

#[jetstream_consumer(stream = "ORDERS", durable = "billing", max_ack_pending = 10, concurrency = 20)]
async fn handler() {}

fn main() {}
