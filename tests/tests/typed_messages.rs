//! Typed messages: subjects from the type, publishers and subscribers agreeing by
//! construction.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use async_nats::jetstream::{self, stream};
use common::*;
use futures_util::StreamExt;
use nats_otel_runtime::prelude::*;
use nats_otel_runtime::{NATS_SERVICE_ERROR_CODE, PublishErrorKind};
use opentelemetry::trace::SpanKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Region {
    Eu,
    Us,
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Region::Eu => "eu",
            Region::Us => "us",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, NatsMessage)]
#[nats(subject = "orders.{region}.{shop}.created", stream = "ORDERS")]
struct OrderCreated {
    region: Region,
    shop: String,
    id: u64,
}

#[test]
fn the_derive_renders_subjects_and_patterns() {
    let order = OrderCreated { region: Region::Eu, shop: "berlin-1".into(), id: 7 };
    assert_eq!(order.subject().unwrap(), "orders.eu.berlin-1.created");
    assert_eq!(OrderCreated::TEMPLATE, "orders.{region}.{shop}.created");
    assert_eq!(OrderCreated::PATTERN, "orders.*.*.created");
    assert_eq!(OrderCreated::STREAM, Some("ORDERS"));
    for bad in ["", "a.b", "*", ">", "two words", "tab\there"] {
        let order = OrderCreated { region: Region::Us, shop: bad.into(), id: 1 };
        let err = order.subject().unwrap_err();
        assert_eq!(err.field, "shop", "{bad:?}");
        assert_eq!(err.value, bad);
    }
    let decoded = OrderCreated::decode(&order.encode().unwrap()).unwrap();
    assert_eq!(decoded, order);
}

#[nats_subscribe(message = OrderCreated, queue = "billing")]
async fn on_order(order: OrderCreated, subject: Subject) -> String {
    format!("{} {} {}", order.id, order.region, subject)
}

#[tokio::test]
async fn a_typed_publish_reaches_a_typed_handler_with_template_named_spans() {
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(on_order)).await;
    let publisher = Publisher::new(h.client.clone());

    let order = OrderCreated { region: Region::Us, shop: "nyc".into(), id: 42 };
    publisher.publish_message(&order).await.unwrap();
    // A request to the concrete subject gets the handler's view of it.
    let reply =
        h.client.request(order.subject().unwrap(), serde_json::to_vec(&order).unwrap().into()).await.unwrap();
    assert_eq!(&reply.payload[..], b"42 us orders.us.nyc.created");

    let spans = h.recorder.wait_for(|s| count(s, "process orders.{region}.{shop}.created") == 2).await;
    let send = one(&spans, "send orders.{region}.{shop}.created");
    assert_eq!(send.span_kind, SpanKind::Producer);
    assert_eq!(attr_str(send, "messaging.destination.name").as_deref(), Some("orders.us.nyc.created"));
    assert_eq!(
        attr_str(send, "messaging.destination.template").as_deref(),
        Some("orders.{region}.{shop}.created")
    );
    let process = named(&spans, "process orders.{region}.{shop}.created")
        .into_iter()
        .find(|p| p.parent_span_id == send.span_context.span_id())
        .expect("the typed publish's process span");
    assert_eq!(
        attr_str(process, "messaging.destination.template").as_deref(),
        Some("orders.{region}.{shop}.created")
    );

    // A value that cannot be a token is refused before anything is sent.
    let bad = OrderCreated { region: Region::Eu, shop: "a.b".into(), id: 1 };
    assert_eq!(publisher.publish_message(&bad).await.unwrap_err().kind(), PublishErrorKind::InvalidSubject);

    // A payload that is not an `OrderCreated` is rejected, named after the type.
    let reply = h.client.request("orders.eu.x.created", "{}".into()).await.unwrap();
    assert_eq!(reply.headers.unwrap().get(NATS_SERVICE_ERROR_CODE).unwrap().as_str(), "400");
    running.stop().await.unwrap();
}

#[jetstream_consumer(message = OrderCreated, stream = "ORDERS", durable = "typed", ack = "confirmed")]
async fn bill(order: OrderCreated, State(seen): State<tokio::sync::mpsc::Sender<u64>>) {
    seen.send(order.id).await.unwrap();
}

#[tokio::test]
async fn a_consumer_by_message_type_filters_on_its_pattern() {
    let h = start().await;
    jetstream::new(h.client.clone())
        .create_stream(stream::Config {
            name: OrderCreated::STREAM.unwrap().into(),
            subjects: vec!["orders.>".into()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
    let (seen, mut ids) = tokio::sync::mpsc::channel(8);
    let running = spawn(NatsService::new(h.client.clone()).state(seen).handler(bill)).await;
    let publisher = Publisher::new(h.client.clone());
    publisher.publish_message(&OrderCreated { region: Region::Eu, shop: "b".into(), id: 1 }).await.unwrap();
    h.client.publish("orders.eu.b.cancelled", "{}".into()).await.unwrap(); // not the pattern
    publisher.publish_message(&OrderCreated { region: Region::Us, shop: "c".into(), id: 2 }).await.unwrap();
    assert_eq!(within("first", ids.recv()).await, Some(1));
    assert_eq!(within("second", ids.recv()).await, Some(2));
    let spans = h.recorder.wait_for(|s| count(s, "ack orders.{region}.{shop}.created") == 2).await;
    assert_eq!(count(&spans, "process orders.{region}.{shop}.created"), 2);
    running.stop().await.unwrap();
}

impl std::str::FromStr for Region {
    type Err = String;

    fn from_str(token: &str) -> Result<Self, String> {
        match token {
            "eu" => Ok(Region::Eu),
            "us" => Ok(Region::Us),
            other => Err(format!("unknown region `{other}`")),
        }
    }
}

#[nats_subscribe("shipments.{region}.{depot}.ready")]
async fn on_shipment(depot: String, Json(id): Json<u64>, region: Region) -> String {
    format!("{id} {region:?} {depot}")
}

#[tokio::test]
async fn captures_are_parsed_into_handler_arguments() {
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(on_shipment)).await;

    let reply = h.client.request("shipments.eu.hub-7.ready", "5".into()).await.unwrap();
    assert_eq!(&reply.payload[..], b"5 Eu hub-7");

    // A token that does not parse is a rejected (poison) message, with the reason.
    let reply = h.client.request("shipments.mars.hub-7.ready", "6".into()).await.unwrap();
    let headers = reply.headers.unwrap();
    assert_eq!(headers.get(NATS_SERVICE_ERROR_CODE).unwrap().as_str(), "400");
    assert_eq!(
        headers.get(nats_otel_runtime::NATS_SERVICE_ERROR).unwrap().as_str(),
        "capture `{region}` = \"mars\": unknown region `mars`"
    );

    let spans = h.recorder.wait_for(|s| count(s, "process shipments.{region}.{depot}.ready") == 2).await;
    let failed = named(&spans, "process shipments.{region}.{depot}.ready")
        .into_iter()
        .find(|s| attr_str(s, "messaging.destination.name").as_deref() == Some("shipments.mars.hub-7.ready"))
        .unwrap();
    assert_eq!(attr_str(failed, "error.type").as_deref(), Some("nats_otel::InvalidCapture"));
    assert_eq!(
        attr_str(failed, "messaging.destination.template").as_deref(),
        Some("shipments.{region}.{depot}.ready")
    );
    running.stop().await.unwrap();
}

/// Only Berlin's orders, typed: the subject is checked at compile time to lie
/// within `OrderCreated`'s pattern.
#[nats_subscribe(subject = "orders.{region}.berlin.created", message = OrderCreated)]
async fn berlin_orders(order: OrderCreated, region: Region) -> String {
    assert_eq!(order.region, region);
    format!("{} {region}", order.id)
}

#[tokio::test]
async fn a_subject_within_the_message_pattern_narrows_a_typed_handler() {
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(berlin_orders)).await;
    let berlin = OrderCreated { region: Region::Us, shop: "berlin".into(), id: 3 };
    let reply = h.client.request(berlin.subject().unwrap(), berlin.encode().unwrap()).await.unwrap();
    assert_eq!(&reply.payload[..], b"3 us");
    // Another shop is not this handler's: nobody answers.
    let paris = OrderCreated { region: Region::Us, shop: "paris".into(), id: 4 };
    let no_one = h.client.request(paris.subject().unwrap(), paris.encode().unwrap()).await;
    assert!(no_one.is_err(), "no responder for another shop");
    running.stop().await.unwrap();
}

#[jetstream_consumer(
    stream = "SHIPMENTS",
    durable = "by-region",
    filter = "shipments.{region}.ready",
    max_deliver = 3,
    ack = "confirmed"
)]
async fn ship(
    region: Region,
    Json(id): Json<u64>,
    State(seen): State<tokio::sync::mpsc::Sender<(Region, u64)>>,
) {
    seen.send((region, id)).await.unwrap();
}

#[tokio::test]
async fn a_consumer_filter_capture_that_does_not_parse_is_termed() {
    let h = start().await;
    let js = jetstream::new(h.client.clone());
    js.create_stream(stream::Config {
        name: "SHIPMENTS".into(),
        subjects: vec!["shipments.>".into()],
        storage: stream::StorageType::Memory,
        ..Default::default()
    })
    .await
    .unwrap();
    let (seen, mut shipped) = tokio::sync::mpsc::channel(8);
    let running = spawn(NatsService::new(h.client.clone()).state(seen).handler(ship)).await;
    js.publish("shipments.mars.ready", "1".into()).await.unwrap().await.unwrap();
    js.publish("shipments.eu.ready", "2".into()).await.unwrap().await.unwrap();
    assert_eq!(within("the valid shipment", shipped.recv()).await, Some((Region::Eu, 2)));

    h.recorder
        .wait_for(|s| {
            count(s, "term shipments.{region}.ready") == 1 && count(s, "ack shipments.{region}.ready") == 1
        })
        .await;
    // Termed once, never redelivered: the server has nothing pending for it.
    let mut consumer: jetstream::consumer::PullConsumer =
        js.get_consumer_from_stream("by-region", "SHIPMENTS").await.unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!((info.num_pending, info.num_ack_pending, info.num_redelivered), (0, 0, 0));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_subject_prefix_moves_every_subject_and_keeps_captures_right() {
    let h = start().await;
    let running = spawn(
        NatsService::new(h.client.clone()).subject_prefix("prod.eu").handler(on_shipment).handler(on_order),
    )
    .await;
    let publisher = Publisher::new(h.client.clone()).with_subject_prefix("prod.eu.").unwrap();
    let mut raw = h.client.subscribe("prod.eu.>").await.unwrap();
    h.client.flush().await.unwrap();

    // Captures are read after the prefix's two tokens.
    let reply = publisher.request("shipments.us.hub-1.ready", "9").await.unwrap();
    assert_eq!(&reply.payload[..], b"9 Us hub-1");
    let order = OrderCreated { region: Region::Eu, shop: "lyon".into(), id: 8 };
    publisher.publish_message(&order).await.unwrap();
    let seen = within("the raw subscriber", raw.next()).await.unwrap();
    assert_eq!(seen.subject.as_str(), "prod.eu.shipments.us.hub-1.ready");
    let seen = within("the raw subscriber", async {
        loop {
            let m = raw.next().await.unwrap();
            if m.subject.starts_with("prod.eu.orders.") {
                break m;
            }
        }
    })
    .await;
    assert_eq!(seen.subject.as_str(), "prod.eu.orders.eu.lyon.created");
    // Without the prefix nobody listens.
    assert!(h.client.request("shipments.us.hub-1.ready", "9".into()).await.is_err());

    let spans =
        h.recorder.wait_for(|s| count(s, "process prod.eu.orders.{region}.{shop}.created") == 1).await;
    let send = one(&spans, "send prod.eu.orders.{region}.{shop}.created");
    assert_eq!(
        attr_str(send, "messaging.destination.name").as_deref(),
        Some("prod.eu.orders.eu.lyon.created")
    );
    one(&spans, "process prod.eu.shipments.{region}.{depot}.ready");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn an_invalid_subject_prefix_is_refused_once_at_start() {
    let h = start().await;
    for bad in ["", "prod.*", "prod..eu", "two words", "prod.>"] {
        let error = NatsService::new(h.client.clone())
            .subject_prefix(bad)
            .handler(on_shipment)
            .start()
            .await
            .unwrap_err();
        assert_eq!(error.kind(), nats_otel_runtime::ServeErrorKind::InvalidSubject, "{bad:?}");
        assert!(format!("{error:#}").contains("invalid subject prefix"), "{error:#}");
        assert!(Publisher::new(h.client.clone()).with_subject_prefix(bad).is_err(), "{bad:?}");
    }
}

#[derive(Debug, Serialize, Deserialize, NatsMessage)]
#[nats(subject = "quotes.{sku}.get", reply = Quote)]
struct QuoteRequest {
    sku: String,
    quantity: u32,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, NatsPayload)]
struct Quote {
    sku: String,
    cents: u64,
}

#[derive(Debug)]
struct UnknownSku(String);

impl std::fmt::Display for UnknownSku {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown sku `{}`", self.0)
    }
}

impl HandlerError for UnknownSku {
    fn code(&self) -> u16 {
        404
    }
}

#[nats_subscribe(message = QuoteRequest, queue = "pricing")]
async fn price(request: QuoteRequest) -> Result<Quote, UnknownSku> {
    match request.sku.as_str() {
        "A1" => Ok(Quote { sku: request.sku, cents: 250 * u64::from(request.quantity) }),
        _ => Err(UnknownSku(request.sku)),
    }
}

#[tokio::test]
async fn a_typed_request_gets_its_declared_reply_type() {
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(price)).await;
    let publisher = Publisher::new(h.client.clone());

    let quote: Quote =
        publisher.request_message(&QuoteRequest { sku: "A1".into(), quantity: 3 }).await.unwrap();
    assert_eq!(quote, Quote { sku: "A1".into(), cents: 750 });

    let error = publisher.request_message(&QuoteRequest { sku: "Z9".into(), quantity: 1 }).await.unwrap_err();
    let service = error.service_error().unwrap();
    assert_eq!((service.code(), service.description()), (404, "unknown sku `Z9`"));

    let spans = h.recorder.wait_for(|s| count(s, "process quotes.{sku}.get") == 2).await;
    let request = named(&spans, "request quotes.{sku}.get");
    assert_eq!(request.len(), 2);
    assert!(request.iter().all(|s| s.span_kind == SpanKind::Client));
    assert_eq!(attr_str(request[0], "messaging.destination.template").as_deref(), Some("quotes.{sku}.get"));
    running.stop().await.unwrap();
}

/// The payload as it is, no JSON.
#[derive(Debug, Clone, PartialEq, NatsMessage)]
#[nats(subject = "images.thumbnails", codec = "raw")]
struct Thumbnail(Bytes);

/// A codec of the user's own: comma-separated numbers.
struct Csv;

#[derive(Debug, PartialEq, NatsMessage)]
#[nats(subject = "metrics.{host}.samples", codec = Csv)]
struct Samples {
    host: String,
    values: Vec<u32>,
}

impl nats_otel_runtime::message::Codec<Samples> for Csv {
    fn encode(value: &Samples) -> Result<Bytes, nats_otel_runtime::message::CodecError> {
        let text: Vec<String> = value.values.iter().map(u32::to_string).collect();
        Ok(format!("{}:{}", value.host, text.join(",")).into())
    }

    fn decode(payload: &Bytes) -> Result<Samples, nats_otel_runtime::message::CodecError> {
        let text = std::str::from_utf8(payload).map_err(nats_otel_runtime::message::CodecError::new)?;
        let (host, values) =
            text.split_once(':').ok_or_else(|| nats_otel_runtime::message::CodecError::new("no host"))?;
        let values = values
            .split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(nats_otel_runtime::message::CodecError::new)?;
        Ok(Samples { host: host.into(), values })
    }
}

#[test]
fn codecs_raw_and_custom_round_trip() {
    let image = Thumbnail(Bytes::from_static(b"\x89PNG\r\n"));
    let encoded = image.encode().unwrap();
    assert_eq!(&encoded[..], b"\x89PNG\r\n");
    assert_eq!(Thumbnail::decode(&encoded).unwrap(), image);

    let samples = Samples { host: "db-1".into(), values: vec![3, 1, 4] };
    let encoded = samples.encode().unwrap();
    assert_eq!(&encoded[..], b"db-1:3,1,4");
    assert_eq!(Samples::decode(&encoded).unwrap(), samples);
    assert!(Samples::decode(&Bytes::from_static(b"nonsense")).is_err());
}

#[nats_subscribe(message = Samples)]
async fn on_samples(samples: Samples) -> String {
    format!("{} {}", samples.host, samples.values.iter().sum::<u32>())
}

#[nats_subscribe(message = Thumbnail)]
async fn on_thumbnail(image: Thumbnail) -> Thumbnail {
    image
}

#[tokio::test]
async fn handlers_decode_with_the_message_codec() {
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(on_samples).handler(on_thumbnail)).await;
    let reply = h.client.request("metrics.db-2.samples", "db-2:1,2,3".into()).await.unwrap();
    assert_eq!(&reply.payload[..], b"db-2 6");
    let reply = h.client.request("images.thumbnails", Bytes::from_static(b"\x00\xff")).await.unwrap();
    assert_eq!(&reply.payload[..], b"\x00\xff");
    // Not CSV: rejected, named after the type.
    let reply = h.client.request("metrics.db-2.samples", "x".into()).await.unwrap();
    assert_eq!(reply.headers.unwrap().get(NATS_SERVICE_ERROR_CODE).unwrap().as_str(), "400");
    running.stop().await.unwrap();
}

#[derive(Debug, Serialize, Deserialize, NatsMessage)]
#[nats(subject = "refunds.{region}.issued", stream = "ORDERS")]
struct RefundIssued {
    region: Region,
    id: u64,
}

#[tokio::test]
async fn a_typed_stream_publish_checks_the_type_s_stream() {
    let h = start().await;
    let js = jetstream::new(h.client.clone());
    for (name, subjects) in
        [("ORDERS", vec!["orders.>".to_owned()]), ("REFUNDS", vec!["refunds.>".to_owned()])]
    {
        js.create_stream(stream::Config {
            name: name.into(),
            subjects,
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let publisher = Publisher::new(h.client.clone());
    let options = || nats_otel_runtime::publisher::StreamPublish::new().derived_message_id();

    let order = OrderCreated { region: Region::Eu, shop: "b".into(), id: 1 };
    let ack = publisher.publish_message_to_stream(&order, options()).await.unwrap();
    assert_eq!((ack.stream.as_str(), ack.sequence, ack.duplicate), ("ORDERS", 1, false));
    // The derived id makes a retry of the same content a duplicate.
    assert!(publisher.publish_message_to_stream(&order, options()).await.unwrap().duplicate);

    // `RefundIssued` says it belongs to ORDERS, but its subjects land in REFUNDS.
    let refund = RefundIssued { region: Region::Us, id: 2 };
    let error = publisher.publish_message_to_stream(&refund, options()).await.unwrap_err();
    assert_eq!(error.kind(), nats_otel_runtime::StreamPublishErrorKind::WrongExpectedStream, "{error}");

    let spans = h.recorder.wait_for(|s| count(s, "send refunds.{region}.issued") == 1).await;
    let sends = named(&spans, "send orders.{region}.{shop}.created");
    assert_eq!(sends.len(), 2);
    assert_eq!(attr_str(sends[0], "messaging.nats.jetstream.stream").as_deref(), Some("ORDERS"));
}

#[tokio::test]
async fn a_subject_prefix_moves_consumer_filters_and_keeps_their_captures_right() {
    let h = start().await;
    let js = jetstream::new(h.client.clone());
    js.create_stream(stream::Config {
        name: "SHIPMENTS".into(),
        subjects: vec!["prod.shipments.>".into()],
        storage: stream::StorageType::Memory,
        ..Default::default()
    })
    .await
    .unwrap();
    let (seen, mut shipped) = tokio::sync::mpsc::channel(8);
    let running =
        spawn(NatsService::new(h.client.clone()).subject_prefix("prod").state(seen).handler(ship)).await;
    let consumer =
        js.get_consumer_from_stream::<jetstream::consumer::pull::Config, _, _>("by-region", "SHIPMENTS");
    let info = consumer.await.unwrap().cached_info().clone();
    assert_eq!(info.config.filter_subject, "prod.shipments.*.ready", "the filter carries the prefix");

    js.publish("prod.shipments.us.ready", "3".into()).await.unwrap().await.unwrap();
    assert_eq!(within("the prefixed shipment", shipped.recv()).await, Some((Region::Us, 3)));
    h.recorder.wait_for(|s| count(s, "ack prod.shipments.{region}.ready") == 1).await;
    running.stop().await.unwrap();
}
