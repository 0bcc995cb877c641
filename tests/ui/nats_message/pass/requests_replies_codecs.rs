use nats_otel_runtime::prelude::*;

#[derive(Serialize, Deserialize, NatsMessage)]
#[nats(subject = "quotes.{sku}.get", reply = Quote)]
struct QuoteRequest {
    sku: String,
}

#[derive(Serialize, Deserialize, NatsPayload)]
struct Quote {
    cents: u64,
}

#[derive(Debug)]
struct Oops;

impl std::fmt::Display for Oops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("oops")
    }
}

impl HandlerError for Oops {}

#[nats_subscribe(message = QuoteRequest)]
async fn quote(_request: QuoteRequest) -> Quote {
    Quote { cents: 1 }
}

#[nats_subscribe(subject = "quotes.A1.get", message = QuoteRequest)]
async fn quote_a1(_request: QuoteRequest) -> Result<Quote, Oops> {
    Err(Oops)
}

#[derive(Clone, NatsMessage)]
#[nats(subject = "blobs.put", codec = "raw", reply = Ack)]
struct Blob(Vec<u8>);

#[derive(NatsPayload)]
#[nats(codec = "raw")]
struct Ack(Bytes);

#[nats_subscribe(message = Blob)]
async fn store(blob: Blob) -> Ack {
    Ack(Bytes::from(blob.0))
}

async fn ask(publisher: Publisher) -> Result<(), nats_otel_runtime::RequestError> {
    let _quote: Quote = publisher.request_message(&QuoteRequest { sku: "A1".into() }).await?;
    let _ack: Ack = publisher.request_message(&Blob(vec![1, 2])).await?;
    Ok(())
}

fn main() {
    let _ = ask;
    let client: Option<async_nats::Client> = None;
    if let Some(client) = client {
        let _ = NatsService::new(client).handler(quote).handler(quote_a1).handler(store);
    }
}
