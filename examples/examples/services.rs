//! A service the NATS tooling can see: it answers the Services API (`$SRV.PING`,
//! `$SRV.INFO`, `$SRV.STATS`), so `nats micro ls`, `nats micro info pricing` and
//! `nats micro stats pricing` list it, its endpoints and their counts.
//!
//! ```sh
//! nats-server &                                   # or set NATS_URL
//! OTEL_TRACES_EXPORTER=console cargo run -p examples --example services        # serves until Ctrl-C
//! nats micro ls; nats request quotes.get '{"sku":"apple"}'; nats micro stats pricing
//! ```

use nats_otel_runtime::prelude::*;

#[derive(Deserialize)]
struct QuoteRequest {
    sku: String,
}

#[derive(Serialize)]
struct Quote {
    sku: String,
    cents: u64,
}

#[nats_subscribe("quotes.get", queue = "pricing")]
async fn quote(Json(request): Json<QuoteRequest>) -> Result<Json<Quote>, ServiceError> {
    match request.sku.as_str() {
        "apple" => Ok(Json(Quote { sku: request.sku, cents: 42 })),
        other => Err(ServiceError::new(404, format!("unknown sku {other}"))),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _telemetry = nats_otel_runtime::telemetry::init()?;
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "127.0.0.1:4222".to_owned());
    let client = async_nats::connect(&url).await?;
    let started = NatsService::new(client)
        .name("pricing")
        .version("1.2.0")
        .description("Quotes by SKU")
        .metadata("team", "payments")
        .handler(quote)
        .start()
        .await?;
    println!("service `pricing` instance {} on {url}; Ctrl-C to stop", started.id());
    started
        .run_until(async {
            tokio::signal::ctrl_c().await.ok();
        })
        .await?;
    Ok(())
}
