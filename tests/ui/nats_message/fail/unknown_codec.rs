use nats_otel_runtime::prelude::*;

#[derive(Serialize, Deserialize, NatsMessage)]
#[nats(subject = "orders.created", codec = "msgpack")]
struct OrderCreated {
    id: u64,
}

fn main() {}
