use nats_otel_runtime::prelude::*;

#[jetstream_consumer(stream = "ORDERS", durable = "bill ing")]
async fn handler() {}

fn main() {}
