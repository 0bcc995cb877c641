use nats_otel_runtime::prelude::*;

#[nats_subscribe("orders.*")]
struct Handler;

fn main() {}
