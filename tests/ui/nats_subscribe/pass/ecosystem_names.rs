//! The prelude lives beside the names Rust services already import:
//! `anyhow::Context` and async-nats' own Services API `Service`.
use anyhow::Context;
use async_nats::service::Service;
use nats_otel_runtime::prelude::*;

#[derive(Deserialize)]
struct Order {
    id: u64,
}

#[nats_subscribe("orders.created")]
async fn record(cx: TraceContext, Json(order): Json<Order>) -> Result<(), ServiceError> {
    use opentelemetry::trace::TraceContextExt;
    cx.span().set_attribute(opentelemetry::KeyValue::new("order.id", order.id as i64));
    Ok(())
}

fn parse(raw: &str) -> anyhow::Result<u64> {
    raw.parse().context("an order id is a number")
}

fn serve(client: async_nats::Client) -> NatsService {
    NatsService::new(client).handler(record)
}

#[allow(dead_code)]
fn micro(service: &Service) -> &Service {
    service
}

fn main() {
    let _ = parse("7");
    let _ = serve;
}
