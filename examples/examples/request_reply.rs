//! Typed request-reply with typed errors: `Transfer` declares its reply type
//! (`Receipt`) and its subject (`bank.{bank}.transfer`), the handler takes the
//! bank from the subject and must return a `Receipt`, and the handler's error enum
//! chooses the `Nats-Service-Error-Code` the requester gets back as a typed error.
//!
//! ```sh
//! OTEL_TRACES_EXPORTER=console cargo run -p examples --example request_reply
//! ```

use nats_otel_runtime::RequestErrorKind;
use nats_otel_runtime::prelude::*;

#[derive(Debug, Deserialize, Serialize, NatsMessage)]
#[nats(subject = "bank.{bank}.transfer", reply = Receipt)]
struct Transfer {
    bank: String,
    from: String,
    to: String,
    cents: u64,
}

#[derive(Debug, Deserialize, Serialize, NatsPayload)]
struct Receipt {
    id: u64,
}

/// What can go wrong, and the code each answers with.
#[derive(Debug)]
enum TransferError {
    UnknownAccount(String),
    InsufficientFunds { missing: u64 },
}

impl std::fmt::Display for TransferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownAccount(account) => write!(f, "unknown account {account}"),
            Self::InsufficientFunds { missing } => write!(f, "insufficient funds: {missing} cents missing"),
        }
    }
}

impl HandlerError for TransferError {
    fn code(&self) -> u16 {
        match self {
            Self::UnknownAccount(_) => 404,
            Self::InsufficientFunds { .. } => 402,
        }
    }

    fn error_type(&self) -> std::borrow::Cow<'static, str> {
        match self {
            Self::UnknownAccount(_) => "unknown_account".into(),
            Self::InsufficientFunds { .. } => "insufficient_funds".into(),
        }
    }
}

#[nats_subscribe(subject = "bank.{bank}.transfer", message = Transfer, queue = "bank")]
async fn transfer(bank: String, t: Transfer) -> Result<Receipt, TransferError> {
    if t.from != "alice" && t.from != "bob" {
        return Err(TransferError::UnknownAccount(t.from));
    }
    if t.cents > 10_000 {
        return Err(TransferError::InsufficientFunds { missing: t.cents - 10_000 });
    }
    tracing::info!(cents = t.cents, %bank, "transferred");
    Ok(Receipt { id: 1 })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = nats_otel_runtime::telemetry::init()?;
    let server = examples::server()?;
    let client = async_nats::connect(&server.url).await?;
    let service = NatsService::new(client.clone()).handler(transfer).start().await?;
    let running = service.spawn();

    let publisher = Publisher::new(client);
    for (from, cents) in [("alice", 2_500), ("mallory", 100), ("bob", 50_000)] {
        let request = Transfer { bank: "north".into(), from: from.into(), to: "carol".into(), cents };
        match publisher.request_message(&request).await {
            Ok(receipt) => println!("{from}: ok, receipt {}", receipt.id),
            Err(e) if e.kind() == RequestErrorKind::Service => {
                let service = e.service_error().map(|s| (s.code(), s.description().to_owned()));
                println!("{from}: refused {service:?}");
            }
            Err(e) => return Err(e.into()),
        }
    }
    running.stop().await?;
    drop(telemetry);
    Ok(())
}
