use nats_otel_runtime::prelude::*;

#[nats_subscribe("orders.{region}.>")]
async fn handler(region: String) {
    let _ = region;
}

fn main() {}
