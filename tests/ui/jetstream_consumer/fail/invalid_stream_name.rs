use nats_otel_runtime::prelude::*;

#[jetstream_consumer(stream = "ORDERS.v2", durable = "billing")]
async fn handler() {}

fn main() {}
