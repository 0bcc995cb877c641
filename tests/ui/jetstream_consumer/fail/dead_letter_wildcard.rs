use nats_otel_runtime::prelude::*;

#[jetstream_consumer(stream = "ORDERS", durable = "billing", dead_letter = "dead.*")]
async fn handler() {}

fn main() {}
