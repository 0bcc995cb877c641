use nats_otel_runtime::prelude::*;

#[nats_subscribe("orders.*", capture_body = "256")]
async fn handler() {}

fn main() {}
