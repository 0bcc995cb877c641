use nats_otel_runtime::prelude::*;

// Two batches of 600 do not fit in the server's default `max_ack_pending` (1000).
#[jetstream_consumer(stream = "ORDERS", durable = "bulk", batch_size = 600, concurrency = 2)]
async fn too_many(_orders: Batch<String>) {}

// A batch waits unacknowledged while it fills: not as long as a backoff delay.
#[jetstream_consumer(stream = "ORDERS", durable = "slow", batch_size = 10, batch_wait = "2s", backoff = ["1s"])]
async fn too_long(_orders: Batch<String>) {}

#[jetstream_consumer(stream = "ORDERS", durable = "wait", batch_wait = "50ms")]
async fn no_size(_order: String) {}

// A batch's messages have different subjects.
#[jetstream_consumer(stream = "ORDERS", durable = "regions", filter = "orders.{region}", batch_size = 10)]
async fn captures(_orders: Batch<String>) {}

#[jetstream_consumer(stream = "ORDERS", ordered = true, batch_size = 10)]
async fn ordered(_orders: Batch<String>) {}

fn main() {}
