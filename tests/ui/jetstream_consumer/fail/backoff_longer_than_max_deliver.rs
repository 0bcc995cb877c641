use nats_otel_runtime::prelude::*;

#[jetstream_consumer(stream = "ORDERS", durable = "billing", max_deliver = 2, backoff = ["1s", "5s"])]
async fn handler() {}

fn main() {}
