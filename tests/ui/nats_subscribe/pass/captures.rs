use nats_otel_runtime::prelude::*;

#[derive(Debug, PartialEq)]
struct Region(String);

impl std::str::FromStr for Region {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Region(s.to_owned()))
    }
}

#[nats_subscribe("orders.{region}.{id}.created", queue = "billing")]
async fn created(id: u64, Json(body): Json<serde_json::Value>, region: Region) -> String {
    format!("{region:?} {id} {body}")
}

#[jetstream_consumer(stream = "ORDERS", durable = "billing", filter = "orders.{region}.*.created")]
async fn billed(mut region: String) {
    region.push('!');
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // Still callable as written.
    let out = created(7, Json(serde_json::json!(1)), Region("eu".into())).await;
    assert_eq!(out, "Region(\"eu\") 7 1");
    billed("eu".into()).await;
    let client: Option<async_nats::Client> = None;
    if let Some(client) = client {
        let _ = NatsService::new(client).handler(created).handler(billed);
    }
}
