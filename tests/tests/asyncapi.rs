//! The AsyncAPI 3.0 contract: built from the endpoints the service serves
//! (without a server), checked by the official parser (`@asyncapi/parser`, run
//! with node), and served by a running named service on `$SRV.ASYNCAPI`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use nats_otel_runtime::prelude::*;
use nats_otel_runtime::{NatsMessage, NatsPayload, ServeErrorKind};
use schemars::JsonSchema;
use serde_json::{Value, json};

#[derive(Serialize, Deserialize, JsonSchema, NatsMessage)]
#[nats(subject = "quotes.{sku}.get", reply = Quote)]
struct QuoteRequest {
    sku: String,
    quantity: u32,
}

#[derive(Serialize, Deserialize, JsonSchema, NatsPayload)]
struct Quote {
    cents: u64,
}

/// A typed request answered with its typed reply.
#[nats_subscribe(message = QuoteRequest, queue = "pricing")]
async fn quote(request: QuoteRequest) -> Result<Quote, ServiceError> {
    Ok(Quote { cents: 250 * u64::from(request.quantity) })
}

#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct Order {
    id: u64,
    lines: Vec<Line>,
}

#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct Line {
    sku: String,
    quantity: u32,
}

/// A capture before the payload argument, and no reply.
#[nats_subscribe("orders.{region}.placed", queue = "billing")]
async fn bill(region: String, Json(order): Json<Order>) {
    let _ = (region, order.id);
}

/// A type without a schema.
#[derive(Deserialize)]
struct Unschematic {}

#[nats_subscribe("audit.>")]
async fn audit(Json(_): Json<Unschematic>) -> String {
    "seen".to_owned()
}

#[jetstream_consumer(
    stream = "ORDERS",
    durable = "shipper",
    filter = "orders.*.placed",
    ack_wait = "30s",
    max_deliver = 4,
    backoff = ["1s", "1500ms"],
    dead_letter = "orders.dead"
)]
async fn ship(Json(order): Json<Order>) {
    let _ = order.id;
}

/// Packs orders a hundred at a time.
#[jetstream_consumer(
    stream = "ORDERS",
    durable = "packer",
    filter = "orders.*.placed",
    batch_size = 100,
    batch_wait = "250ms"
)]
async fn pack(orders: Batch<Json<Order>>) {
    let _ = orders.len();
}

#[derive(Serialize, Deserialize, JsonSchema, NatsMessage)]
#[nats(subject = "orders.{region}.shipped", stream = "ORDERS")]
struct OrderShipped {
    region: String,
    id: u64,
}

/// Registered without a macro: its types are not described.
async fn ping() {}

/// The service, as a user writes it once for serving and for the contract.
fn shop<S: Send + Sync + 'static>(service: NatsService<S>) -> NatsService<S> {
    service
        .name("shop")
        .version("2.0.0")
        .description("Orders and quotes")
        .subject_prefix("prod")
        .handler(quote)
        .handler(bill)
        .handler(audit)
        .handler(ship)
        .handler(pack)
        .subscribe("ping", ping)
        .sends::<OrderShipped>()
}

fn document() -> Value {
    shop(NatsService::without_connection()).asyncapi().unwrap().into_value()
}

#[test]
fn the_document_describes_every_endpoint_from_its_types() {
    let document = document();
    assert_eq!(document["asyncapi"], "3.0.0");
    assert_eq!(
        document["info"],
        json!({"title": "shop", "version": "2.0.0", "description": "Orders and quotes"})
    );

    // A typed request: its template (prefix applied) with the capture as a
    // parameter, its queue group as the NATS binding, its typed reply.
    let channel = &document["channels"]["quote"];
    assert_eq!(channel["address"], "prod.quotes.{sku}.get");
    assert_eq!(channel["parameters"]["sku"]["description"], "Token 3 of the subject.");
    let operation = &document["operations"]["quote"];
    assert_eq!(operation["action"], "receive");
    assert_eq!(operation["channel"]["$ref"], "#/channels/quote");
    assert_eq!(operation["messages"][0]["$ref"], "#/channels/quote/messages/QuoteRequest");
    assert_eq!(operation["bindings"]["nats"]["queue"], "pricing");
    assert!(operation["x-nats-otel-handler"].as_str().unwrap().ends_with("quote"), "{operation}");
    assert_eq!(operation["description"], "A typed request answered with its typed reply.");
    let reply = &operation["reply"];
    assert_eq!(reply["channel"]["$ref"], "#/channels/quote_reply");
    assert_eq!(document["channels"]["quote_reply"]["address"], Value::Null);
    assert_eq!(reply["messages"][0]["$ref"], "#/channels/quote_reply/messages/Quote");

    // Messages: named after their types, JSON, with schemas from schemars;
    // named types under components/schemas, referenced.
    let messages = &document["components"]["messages"];
    let request = &messages["QuoteRequest"];
    assert_eq!(request["contentType"], "application/json");
    assert_eq!(request["payload"]["$ref"], "#/components/schemas/QuoteRequest");
    assert_eq!(request["headers"]["properties"]["traceparent"]["type"], "string");
    let schemas = &document["components"]["schemas"];
    assert_eq!(schemas["QuoteRequest"]["properties"]["quantity"]["type"], "integer");
    assert_eq!(schemas["Quote"]["required"], json!(["cents"]));
    assert_eq!(schemas["Order"]["properties"]["lines"]["items"]["$ref"], "#/components/schemas/Line");
    assert_eq!(schemas["Line"]["properties"]["sku"]["type"], "string");

    // A capture argument is not the payload: `Json<Order>` is; no reply for `()`.
    assert_eq!(document["channels"]["bill"]["address"], "prod.orders.{region}.placed");
    assert_eq!(
        document["channels"]["bill"]["parameters"]["region"]["description"],
        "Token 3 of the subject."
    );
    assert_eq!(document["operations"]["bill"]["messages"][0]["$ref"], "#/channels/bill/messages/Order");
    assert!(document["operations"]["bill"].get("reply").is_none());

    // No schema: the message is still named and typed as JSON; a `String`
    // reply is text.
    assert_eq!(document["channels"]["audit"]["address"], "prod.audit.>");
    assert!(messages["Unschematic"].get("payload").is_none(), "{}", messages["Unschematic"]);
    assert_eq!(messages["Unschematic"]["contentType"], "application/json");
    assert_eq!(messages["String"]["payload"], json!({"type": "string"}));
    assert_eq!(messages["String"]["contentType"], "text/plain");

    // The consumer: one `Order` message shared with `bill`, its settings as
    // an extension, no reply.
    let ship = &document["operations"]["ship"];
    assert_eq!(document["channels"]["ship"]["address"], "prod.orders.*.placed");
    assert_eq!(ship["messages"][0]["$ref"], "#/channels/ship/messages/Order");
    assert!(ship.get("reply").is_none());
    assert_eq!(
        ship["x-nats-otel-jetstream"],
        json!({
            "stream": "ORDERS",
            "durable": "shipper",
            "filter_subjects": ["prod.orders.*.placed"],
            "deliver": "all",
            "ack": "fire",
            "ack_wait": "30s",
            "max_deliver": 4,
            "backoff": ["1s", "1500ms"],
            "dead_letter": "prod.orders.dead",
        })
    );

    // A batch handler: described by the message each item is, with its batches.
    let pack = &document["operations"]["pack"];
    assert_eq!(pack["messages"][0]["$ref"], "#/channels/pack/messages/Order");
    assert_eq!(pack["x-nats-otel-jetstream"]["batch_size"], 100);
    assert_eq!(pack["x-nats-otel-jetstream"]["batch_wait"], "250ms");

    // Undecorated: a channel and an operation, nothing said of the payload.
    assert_eq!(document["channels"]["ping"]["address"], "prod.ping");
    assert!(document["operations"]["ping"].get("messages").is_none());

    // What the service sends.
    let send = &document["operations"]["send_OrderShipped"];
    assert_eq!(send["action"], "send");
    assert_eq!(document["channels"]["send_OrderShipped"]["address"], "prod.orders.{region}.shipped");
    assert_eq!(send["x-nats-otel-jetstream"]["stream"], "ORDERS");
    assert_eq!(schemas["OrderShipped"]["properties"]["id"]["type"], "integer");

    // Every message is defined once.
    let names: Vec<&String> = messages.as_object().unwrap().keys().collect();
    assert_eq!(names, ["Order", "OrderShipped", "Quote", "QuoteRequest", "String", "Unschematic"]);
}

/// The official parser, run by node from `tests/asyncapi` (dependencies
/// installed by `scripts/test`): its output and whether it accepted the files.
fn official_parser(files: &[&Path]) -> (bool, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("asyncapi");
    assert!(
        dir.join("node_modules/@asyncapi/parser").exists(),
        "the AsyncAPI parser is not installed: run `npm ci --prefix tests/asyncapi` (scripts/test does)"
    );
    let output = Command::new("node").arg(dir.join("validate.mjs")).args(files).output().unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[test]
fn the_official_parser_accepts_the_document_and_refuses_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("shop.json");
    std::fs::write(&good, document().to_string()).unwrap();
    let (accepted, output) = official_parser(&[&good]);
    assert!(accepted, "{output}");
    assert!(output.contains("valid AsyncAPI 3.0.0"), "{output}");

    // The check can fail: the same document with a capture described under
    // another name, and with an operation on a channel that does not exist.
    let mut missing_parameter = document();
    missing_parameter["channels"]["quote"]["parameters"] = json!({ "item": { "description": "not `sku`" } });
    let mut dangling = document();
    dangling["operations"]["bill"]["channel"]["$ref"] = json!("#/channels/nowhere");
    for (name, broken, expected) in [
        ("parameter", missing_parameter, "asyncapi3-channel-parameters"),
        ("dangling", dangling, "#/channels/nowhere"),
    ] {
        let file = dir.path().join(format!("{name}.json"));
        std::fs::write(&file, broken.to_string()).unwrap();
        let (accepted, output) = official_parser(&[&file]);
        assert!(!accepted && output.contains(expected), "{name}: {output}");
    }
}

#[test]
fn a_contract_needs_a_name_and_a_connectionless_service_does_not_start() {
    let unnamed = NatsService::without_connection().handler(bill).asyncapi().unwrap_err();
    assert_eq!(unnamed.kind(), ServeErrorKind::InvalidIdentity);
    assert!(unnamed.to_string().contains("add `.name(..)`"), "{unnamed}");

    let bad_version = NatsService::without_connection().name("shop").version("two").asyncapi().unwrap_err();
    assert_eq!(bad_version.kind(), ServeErrorKind::InvalidIdentity);

    // An endpoint the runtime would refuse at start is refused here too, named.
    let bad_subject = NatsService::without_connection()
        .name("shop")
        .version("2.0.0")
        .subscribe("orders..placed", ping)
        .asyncapi();
    let bad_subject = bad_subject.unwrap_err();
    assert_eq!(bad_subject.kind(), ServeErrorKind::InvalidSubject);
    assert!(bad_subject.to_string().contains("ping"), "{bad_subject}");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let refused = runtime.block_on(shop(NatsService::without_connection()).start()).unwrap_err();
    assert_eq!(refused.kind(), ServeErrorKind::NoConnection);
    assert!(refused.to_string().contains("Service::new(client)"), "{refused}");
}

#[tokio::test]
async fn a_running_service_serves_its_document_and_points_at_it() {
    let h = start().await;
    async_nats::jetstream::new(h.client.clone())
        .create_stream(async_nats::jetstream::stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["prod.orders.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let running = spawn(shop(NatsService::new(h.client.clone()))).await;
    let id = running.id().to_owned();

    for subject in
        ["$SRV.ASYNCAPI".to_owned(), "$SRV.ASYNCAPI.shop".to_owned(), format!("$SRV.ASYNCAPI.shop.{id}")]
    {
        // Hostile bodies and headers change nothing: the request is answered.
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("traceparent", "00-garbage");
        let reply = within(
            &subject,
            h.client.request_with_headers(subject.clone(), headers, Bytes::from_static(b"\xff{not json")),
        )
        .await
        .unwrap();
        let served: Value = serde_json::from_slice(&reply.payload).unwrap();
        assert_eq!(served, document(), "{subject}");
    }

    let info = within("INFO", h.client.request("$SRV.INFO.shop", Bytes::new())).await.unwrap();
    let info: Value = serde_json::from_slice(&info.payload).unwrap();
    assert_eq!(info["metadata"]["nats_otel.asyncapi"], "$SRV.ASYNCAPI.shop", "{info}");

    // Control requests are not the service's work: no span.
    running.stop().await.unwrap();
    assert!(
        h.recorder.spans().iter().all(|span| !span.name.contains("ASYNCAPI")),
        "{:?}",
        h.recorder.spans()
    );
}
