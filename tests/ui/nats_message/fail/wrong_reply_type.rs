use nats_otel_runtime::prelude::*;

#[derive(Serialize, Deserialize, NatsMessage)]
#[nats(subject = "quotes.get", reply = Quote)]
struct QuoteRequest {
    sku: String,
}

#[derive(Serialize, Deserialize, NatsPayload)]
struct Quote {
    cents: u64,
}

// The request type declares `reply = Quote`.
#[nats_subscribe(message = QuoteRequest)]
async fn handler(_request: QuoteRequest) -> String {
    String::new()
}

fn main() {}
