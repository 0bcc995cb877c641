use nats_otel_runtime::prelude::*;

#[nats_subscribe("orders.*", capture_headers = ["x-tenant", "Nats-Msg-Id"], capture_body = 256)]
async fn core(_body: Bytes) {}

#[nats_subscribe("orders.single", capture_headers = "x-tenant")]
async fn single(_body: Bytes) {}

#[jetstream_consumer(stream = "ORDERS", durable = "billing", capture_headers = ["x-tenant"], capture_body = 65536)]
async fn consumer(_body: Bytes) {}

fn main() {
    let _ = (core, single, consumer);
}
