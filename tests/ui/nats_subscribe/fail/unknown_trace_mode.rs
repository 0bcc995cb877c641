use nats_otel_runtime::prelude::*;

#[nats_subscribe("orders.*", trace = "child")]
async fn handler() {}

fn main() {}
