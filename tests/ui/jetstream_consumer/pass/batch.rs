use nats_otel_runtime::prelude::*;

#[derive(Deserialize)]
struct Order {
    id: u64,
}

#[derive(Clone)]
struct Db;

/// Stores orders a hundred at a time; fails the ones with id 0 alone.
#[jetstream_consumer(stream = "ORDERS", durable = "bulk", batch_size = 100, batch_wait = "50ms", dead_letter = "dead.orders")]
async fn store(orders: Batch<Json<Order>>, State(_db): State<Db>, _cx: TraceContext) -> BatchOutcome<ServiceError> {
    let mut outcome = BatchOutcome::new();
    for order in &orders {
        if order.0.id == 0 {
            outcome.fail(order.id(), ServiceError::new(422, "order id 0"));
        }
        let _sequence = order.info().map(|info| info.stream_sequence);
    }
    outcome
}

/// Fails or succeeds as a whole.
#[jetstream_consumer(stream = "ORDERS", durable = "audit", filter = "orders.*", batch_size = 10, concurrency = 4, max_ack_pending = 40)]
async fn audit(orders: Batch<Bytes>) -> Result<(), ServiceError> {
    let _total: usize = orders.into_iter().map(|item| item.into_inner().len()).sum();
    Ok(())
}

fn main() {
    let _ = |client: async_nats::Client| NatsService::new(client).state(Db).handler(store).handler(audit);
}
