use nats_otel_runtime::prelude::*;

#[nats_subscribe("ord*.created")]
async fn handler() {}

fn main() {}
