use nats_otel_runtime::prelude::*;

#[jetstream_consumer(stream = "ORDERS", durable = "billing", ack_wait = "30 seconds")]
async fn handler() {}

fn main() {}
