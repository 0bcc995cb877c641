use nats_otel_runtime::prelude::*;

#[nats_subscribe("orders.>.created")]
async fn handler() {}

fn main() {}
