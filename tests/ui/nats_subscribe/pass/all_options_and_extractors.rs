use nats_otel_runtime::prelude::*;
use nats_otel_runtime::{HeaderMap, Message, Subject, TraceContext};

#[derive(Clone)]
struct Db;

#[derive(Deserialize)]
struct Order {
    id: u64,
}

#[derive(Serialize)]
struct Receipt {
    id: u64,
}

#[nats_subscribe(subject = "orders.*.created", queue = "billing", concurrency = 8, trace = "link")]
async fn every_extractor(
    State(_db): State<Db>,
    _subject: Subject,
    _headers: HeaderMap,
    _message: Message,
    _cx: TraceContext,
    _raw: Bytes,
    Json(order): Json<Order>,
) -> Result<Json<Receipt>, ServiceError> {
    Ok(Json(Receipt { id: order.id }))
}

#[nats_subscribe(">")]
async fn text(body: String) -> String {
    body
}

#[nats_subscribe("legacy.*")]
async fn legacy(envelope: Envelope<serde_json::Value>) -> Result<(), std::io::Error> {
    let _ = envelope.data;
    Ok(())
}

/// Doc comments and lint attributes are kept.
#[nats_subscribe("no.args")]
#[allow(clippy::unused_async)]
pub async fn no_args() {}

fn main() {
    let client: Option<async_nats::Client> = None;
    if let Some(client) = client {
        let _service = NatsService::new(client).state(Db).handler(every_extractor).handler(text).handler(legacy).handler(no_args);
    }
}
