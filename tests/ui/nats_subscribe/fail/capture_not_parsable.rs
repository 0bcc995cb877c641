use nats_otel_runtime::prelude::*;

struct Region;

#[nats_subscribe("orders.{region}.created")]
async fn handler(region: Region) {
    let _ = region;
}

fn main() {}
