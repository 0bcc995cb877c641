use nats_otel_runtime::prelude::*;

#[derive(Serialize, Deserialize, NatsMessage)]
struct OrderCreated {
    region: String,
}

fn main() {}
