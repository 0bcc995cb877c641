use nats_otel_runtime::prelude::*;

#[nats_subscribe("orders.*", concurrency = 0)]
async fn handler() {}

fn main() {}
