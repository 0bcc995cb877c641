use nats_otel_runtime::prelude::*;

#[derive(Serialize, Deserialize, NatsMessage)]
#[nats(subject = "orders.{region}..created")]
struct OrderCreated {
    region: String,
}

fn main() {}
