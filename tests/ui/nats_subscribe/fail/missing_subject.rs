use nats_otel_runtime::prelude::*;

#[nats_subscribe(queue = "billing")]
async fn handler() {}

fn main() {}
