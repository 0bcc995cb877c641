use nats_otel_runtime::prelude::*;

#[jetstream_consumer(stream = "ORDERS", durable = "billing", max_redeliver = 3)]
async fn handler() {}

fn main() {}
