use nats_otel_runtime::prelude::*;

#[jetstream_consumer(stream = "ORDERS", durable = "billing", capture_body = 1000000)]
async fn handler() {}

fn main() {}
