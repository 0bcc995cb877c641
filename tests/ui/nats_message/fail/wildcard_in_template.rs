use nats_otel_runtime::prelude::*;

#[derive(Serialize, Deserialize, NatsMessage)]
#[nats(subject = "orders.*.created")]
struct OrderCreated {
    region: String,
}

fn main() {}
