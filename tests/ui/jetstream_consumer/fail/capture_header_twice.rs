use nats_otel_runtime::prelude::*;

#[jetstream_consumer(stream = "ORDERS", durable = "billing", capture_headers = ["x-tenant", "X-Tenant"])]
async fn handler() {}

fn main() {}
