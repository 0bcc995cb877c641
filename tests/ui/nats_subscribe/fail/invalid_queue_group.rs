use nats_otel_runtime::prelude::*;

#[nats_subscribe("orders.*", queue = "bill ing")]
async fn handler() {}

fn main() {}
