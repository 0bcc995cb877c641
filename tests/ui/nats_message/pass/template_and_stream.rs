use nats_otel_runtime::prelude::*;

#[derive(Serialize, Deserialize, NatsMessage)]
#[nats(subject = "orders.{region}.{id}.created", stream = "ORDERS")]
struct OrderCreated {
    region: String,
    id: u64,
    total: u64,
}

#[derive(Serialize, Deserialize, NatsMessage)]
#[nats(subject = "audit.events")]
struct AuditEvent {
    text: String,
}

#[nats_subscribe(message = OrderCreated, queue = "billing")]
async fn on_order(_order: OrderCreated) {}

fn main() {
    use nats_otel_runtime::NatsMessage as _;
    assert_eq!(OrderCreated::PATTERN, "orders.*.*.created");
    assert_eq!(AuditEvent::PATTERN, "audit.events");
    let _ = on_order;
}
