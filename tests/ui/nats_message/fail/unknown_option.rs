use nats_otel_runtime::prelude::*;

#[derive(Serialize, Deserialize, NatsMessage)]
#[nats(subject = "orders.created", stram = "ORDERS")]
struct OrderCreated {
    region: String,
}

fn main() {}
