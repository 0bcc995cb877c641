use nats_otel_runtime::prelude::*;

#[derive(Serialize, Deserialize, NatsMessage)]
#[nats(subject = "orders.{region}.created")]
struct OrderCreated {
    region: String,
}

// `orders.eu.cancelled` is not an `OrderCreated` subject.
#[nats_subscribe(subject = "orders.eu.cancelled", message = OrderCreated)]
async fn handler(_order: OrderCreated) {}

fn main() {}
