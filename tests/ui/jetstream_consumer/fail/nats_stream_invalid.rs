use nats_otel_runtime::prelude::*;

#[derive(NatsStream)]
#[nats_stream(name = "ORDERS.v2", subjects = ["orders..>"], storage = "disk", replicas = 7, max_age = "a week")]
struct Orders;

#[derive(NatsStream)]
struct Unnamed;

fn main() {}
