use nats_otel_runtime::prelude::*;

#[derive(Serialize, Deserialize, NatsMessage)]
#[nats(subject = "orders.created")]
struct OrderCreated {
    id: u64,
}

async fn ask(publisher: Publisher) {
    // An event has no reply type: it is published, not requested.
    let _ = publisher.request_message(&OrderCreated { id: 1 }).await;
}

fn main() {
    let _ = ask;
}
