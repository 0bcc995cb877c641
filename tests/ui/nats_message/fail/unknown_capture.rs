use nats_otel_runtime::prelude::*;

#[derive(Serialize, Deserialize, NatsMessage)]
#[nats(subject = "orders.{regoin}.created")]
struct OrderCreated {
    region: String,
}

fn main() {}
