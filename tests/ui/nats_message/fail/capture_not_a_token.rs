use nats_otel_runtime::prelude::*;

#[derive(Serialize, Deserialize, NatsMessage)]
#[nats(subject = "orders.{lines}.created")]
struct OrderCreated {
    lines: Vec<String>,
}

fn main() {}
