use nats_otel_runtime::prelude::*;

#[derive(Serialize, Deserialize, NatsMessage)]
#[nats(subject = "orders.{region}.created")]
struct OrderCreated {
    region: String,
}

// `orders.>` also matches subjects that are not `OrderCreated`'s.
#[jetstream_consumer(stream = "ORDERS", durable = "billing", filter = "orders.>", message = OrderCreated)]
async fn handler(_order: OrderCreated) {}

fn main() {}
