use nats_otel_runtime::prelude::*;

struct Billing;

impl Billing {
    #[nats_subscribe("orders.*")]
    async fn handler(&self) {}
}

fn main() {}
