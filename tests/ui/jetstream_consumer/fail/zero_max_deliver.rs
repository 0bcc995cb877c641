use nats_otel_runtime::prelude::*;

#[jetstream_consumer(stream = "ORDERS", durable = "billing", max_deliver = 0)]
async fn handler() {}

fn main() {}
