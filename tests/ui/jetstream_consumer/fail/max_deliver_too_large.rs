use nats_otel_runtime::prelude::*;

#[jetstream_consumer(stream = "ORDERS", durable = "billing", max_deliver = 18446744073709551615)]
async fn handler() {}

fn main() {}
