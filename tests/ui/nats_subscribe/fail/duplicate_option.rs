use nats_otel_runtime::prelude::*;

#[nats_subscribe("orders.*", queue = "a", queue = "b")]
async fn handler() {}

fn main() {}
