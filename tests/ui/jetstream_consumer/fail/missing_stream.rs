use nats_otel_runtime::prelude::*;

#[jetstream_consumer(durable = "billing")]
async fn handler() {}

fn main() {}
