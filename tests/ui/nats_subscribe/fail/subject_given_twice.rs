use nats_otel_runtime::prelude::*;

#[nats_subscribe("orders.*", subject = "orders.>")]
async fn handler() {}

fn main() {}
