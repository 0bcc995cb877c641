use nats_otel_runtime::prelude::*;

#[jetstream_consumer(stream = "ORDERS", durable = "billing", stream = "EVENTS")]
async fn handler() {}

fn main() {}
