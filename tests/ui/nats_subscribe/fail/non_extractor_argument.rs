use nats_otel_runtime::prelude::*;

#[nats_subscribe("orders.*")]
async fn handler(Json(_order): Json<u64>, retries: u32) {
    let _ = retries;
}

fn main() {}
