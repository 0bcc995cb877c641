use nats_otel_runtime::prelude::*;

#[derive(NatsStream)]
#[nats_stream(name = "ORDERS", subjects = ["orders.>", "returns.*"])]
struct Orders;

#[jetstream_consumer(stream = Orders, durable = "refunds", filter = "refunds.>")]
async fn refund(_body: String) {}

#[jetstream_consumer(stream = Orders, durable = "returns", filter = ["returns.eu", "returns.eu.late"])]
async fn returns(_body: String) {}

fn main() {}
