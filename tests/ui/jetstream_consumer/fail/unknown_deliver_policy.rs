use nats_otel_runtime::prelude::*;

#[jetstream_consumer(stream = "ORDERS", durable = "billing", deliver = "latest")]
async fn handler() {}

fn main() {}
