use nats_otel_runtime::prelude::*;

#[derive(Serialize, Deserialize, NatsMessage)]
#[nats(subject = "orders.{region}.>")]
struct OrderCreated {
    region: String,
}

fn main() {}
