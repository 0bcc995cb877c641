use nats_otel_runtime::prelude::*;

#[jetstream_consumer(stream = "ORDERS", durable = "billing", concurrency = 0)]
async fn handler() {}

fn main() {}
