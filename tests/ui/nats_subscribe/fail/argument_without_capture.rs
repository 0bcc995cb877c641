use nats_otel_runtime::prelude::*;

// `regoin` is not a capture of the subject, so it must be an extractor.
#[nats_subscribe("orders.{region}.created")]
async fn handler(region: String, regoin: u32) {
    let _ = (region, regoin);
}

fn main() {}
