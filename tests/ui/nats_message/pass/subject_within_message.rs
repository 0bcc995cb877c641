use nats_otel_runtime::prelude::*;

#[derive(Serialize, Deserialize, NatsMessage)]
#[nats(subject = "orders.{region}.{shop}.created")]
struct OrderCreated {
    region: String,
    shop: String,
}

#[nats_subscribe(subject = "orders.eu.*.created", message = OrderCreated)]
async fn europe(_order: OrderCreated) {}

#[nats_subscribe(subject = "orders.{region}.berlin.created", message = OrderCreated)]
async fn berlin(_order: OrderCreated, region: String) {
    let _ = region;
}

#[jetstream_consumer(stream = "ORDERS", durable = "eu", filter = "orders.eu.{shop}.created", message = OrderCreated)]
async fn eu_shops(shop: String, _order: OrderCreated) {
    let _ = shop;
}

fn main() {
    let client: Option<async_nats::Client> = None;
    if let Some(client) = client {
        let _ = NatsService::new(client).handler(europe).handler(berlin).handler(eu_shops);
    }
}
