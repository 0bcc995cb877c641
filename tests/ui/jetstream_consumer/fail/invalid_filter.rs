use nats_otel_runtime::prelude::*;

#[jetstream_consumer(stream = "ORDERS", durable = "billing", filter = ["orders.*", "orders.>.created"])]
async fn handler() {}

fn main() {}
