use nats_otel_runtime::prelude::*;

#[derive(NatsStream)]
#[nats_stream(name = "ORDERS", subjects = ["orders.>"], storage = "memory", retention = "work_queue", replicas = 3,
              max_age = "168h", max_messages = 1000000, max_bytes = 1073741824, duplicate_window = "2m")]
struct Orders;

#[derive(Serialize, Deserialize, NatsMessage)]
#[nats(subject = "orders.{region}.placed")]
struct OrderPlaced {
    region: String,
}

#[jetstream_consumer(stream = Orders, durable = "billing", filter = "orders.{region}.placed")]
async fn bill(region: String) {
    let _ = region;
}

#[jetstream_consumer(stream = Orders, durable = "typed", message = OrderPlaced)]
async fn typed(order: OrderPlaced) {
    let _ = order.region;
}

#[jetstream_consumer(stream = Orders, ordered = true)]
async fn replay(_body: Bytes) {}

fn main() {
    assert_eq!(Orders::NAME, "ORDERS");
    assert_eq!(Orders::config().num_replicas, 3);
    let client: Option<async_nats::Client> = None;
    if let Some(client) = client {
        let _ = NatsService::new(client).handler(bill).handler(typed).handler(replay);
    }
}
