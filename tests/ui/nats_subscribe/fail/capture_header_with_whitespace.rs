use nats_otel_runtime::prelude::*;

#[nats_subscribe("orders.*", capture_headers = ["x-tenant", "x tenant"])]
async fn handler() {}

fn main() {}
