use nats_otel_runtime::prelude::*;

#[nats_subscribe("orders.*", que = "billing")]
async fn handler() {}

fn main() {}
