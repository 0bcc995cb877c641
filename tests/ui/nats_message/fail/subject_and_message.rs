use nats_otel_runtime::prelude::*;

#[derive(Serialize, Deserialize, NatsMessage)]
#[nats(subject = "orders.{region}.created")]
struct OrderCreated {
    region: String,
}

#[nats_subscribe(subject = "orders.eu.created", message = OrderCreated)]
async fn handler(_order: OrderCreated) {}

fn main() {}
