//! Request-reply: replies from `Ok`, NATS service error headers from `Err`,
//! rejections and panics answered and recorded without stopping the service.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use nats_otel_runtime::prelude::*;
use nats_otel_runtime::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE, RequestErrorKind};
use opentelemetry::trace::{SpanKind, Status};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct QuoteRequest {
    sku: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Quote {
    sku: String,
    cents: u64,
}

#[derive(Debug)]
enum PricingError {
    UnknownSku(String),
}

impl std::fmt::Display for PricingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownSku(sku) => write!(f, "unknown sku {sku}"),
        }
    }
}

impl HandlerError for PricingError {
    fn code(&self) -> u16 {
        404
    }
}

#[nats_subscribe("quotes.get", queue = "pricing")]
async fn quote(Json(req): Json<QuoteRequest>) -> Result<Json<Quote>, PricingError> {
    match req.sku.as_str() {
        "boom" => panic!("pricing engine exploded"),
        "A1" => Ok(Json(Quote { sku: req.sku, cents: 1250 })),
        _ => Err(PricingError::UnknownSku(req.sku)),
    }
}

#[nats_subscribe("echo.text")]
async fn echo(text: String, subject: Subject) -> String {
    format!("{subject}: {text}")
}

#[nats_subscribe("ping")]
async fn ping() {}

#[tokio::test]
async fn ok_is_replied_with_a_client_span_around_the_request() {
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(quote)).await;
    let publisher = Publisher::new(h.client.clone());

    let quote: Quote =
        publisher.request_json("quotes.get", &QuoteRequest { sku: "A1".into() }).await.unwrap();
    assert_eq!(quote, Quote { sku: "A1".into(), cents: 1250 });

    let spans = h.recorder.wait_for(|s| count(s, "process quotes.get") == 1).await;
    let request = one(&spans, "request quotes.get");
    let process = one(&spans, "process quotes.get");
    assert_eq!(request.span_kind, SpanKind::Client);
    assert_eq!(attr_str(request, "messaging.operation.name").as_deref(), Some("request"));
    assert_eq!(process.parent_span_id, request.span_context.span_id());
    assert_eq!(process.status, Status::Unset);
    let reply_to = attr_str(process, "messaging.nats.reply_to").expect("reply subject recorded");
    assert!(reply_to.starts_with("_INBOX."), "{reply_to}");
    assert_eq!(attr_str(process, "messaging.consumer.group.name").as_deref(), Some("pricing"));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn err_replies_with_service_error_headers_and_marks_the_span() {
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(quote)).await;

    // Raw request: the headers are what nats.go micro and async-nats' service API send.
    let reply = h.client.request("quotes.get", r#"{"sku":"Z9"}"#.into()).await.unwrap();
    let headers = reply.headers.expect("error headers");
    assert_eq!(headers.get(NATS_SERVICE_ERROR_CODE).unwrap().as_str(), "404");
    assert_eq!(headers.get(NATS_SERVICE_ERROR).unwrap().as_str(), "unknown sku Z9");
    assert!(reply.payload.is_empty());

    // The traced publisher turns them into a typed error.
    let err = Publisher::new(h.client.clone())
        .request_json::<_, Quote>("quotes.get", &QuoteRequest { sku: "Z8".into() })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), RequestErrorKind::Service);
    let service = err.service_error().expect("service error");
    assert_eq!((service.code(), service.description()), (404, "unknown sku Z8"));

    let spans = h.recorder.wait_for(|s| count(s, "process quotes.get") == 2).await;
    for process in named(&spans, "process quotes.get") {
        assert!(matches!(process.status, Status::Error { .. }), "{:?}", process.status);
        let error_type = attr_str(process, "error.type").unwrap();
        assert!(error_type.ends_with("PricingError"), "{error_type}");
        let exception =
            process.events.events.iter().find(|e| e.name == "exception").expect("exception event");
        let message = exception.attributes.iter().find(|kv| kv.key.as_str() == "exception.message").unwrap();
        assert!(message.value.as_str().starts_with("unknown sku"));
    }
    let request = one(&spans, "request quotes.get");
    assert!(matches!(request.status, Status::Error { .. }));
    assert_eq!(attr_str(request, "error.type").as_deref(), Some("404"));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn undecodable_payload_is_rejected_with_400_and_the_service_keeps_going() {
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(quote)).await;

    for bad in ["", "not json", r#"{"sku": 5}"#, "\u{0}\u{1}"] {
        let reply = h.client.request("quotes.get", bad.into()).await.unwrap();
        let headers = reply.headers.expect("error headers");
        assert_eq!(headers.get(NATS_SERVICE_ERROR_CODE).unwrap().as_str(), "400", "payload {bad:?}");
        assert!(headers.get(NATS_SERVICE_ERROR).unwrap().as_str().starts_with("invalid JSON payload"));
    }
    // Invalid UTF-8 bytes too.
    let reply = h.client.request("quotes.get", vec![0xff, 0xfe, 0xfd].into()).await.unwrap();
    assert_eq!(reply.headers.unwrap().get(NATS_SERVICE_ERROR_CODE).unwrap().as_str(), "400");

    // Still serving.
    let ok = h.client.request("quotes.get", r#"{"sku":"A1"}"#.into()).await.unwrap();
    assert!(ok.headers.is_none());

    let spans = h.recorder.wait_for(|s| count(s, "process quotes.get") == 6).await;
    let rejected: Vec<_> = named(&spans, "process quotes.get")
        .into_iter()
        .filter(|s| attr_str(s, "error.type").as_deref() == Some("serde_json::Error"))
        .collect();
    assert_eq!(rejected.len(), 5);
    assert!(rejected.iter().all(|s| matches!(s.status, Status::Error { .. })));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_panic_is_caught_answered_and_recorded() {
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(quote)).await;

    let reply = h.client.request("quotes.get", r#"{"sku":"boom"}"#.into()).await.unwrap();
    let headers = reply.headers.expect("error headers");
    assert_eq!(headers.get(NATS_SERVICE_ERROR_CODE).unwrap().as_str(), "500");
    assert_eq!(
        headers.get(NATS_SERVICE_ERROR).unwrap().as_str(),
        "handler panicked: pricing engine exploded"
    );

    // The subscription survives the panic.
    let ok = h.client.request("quotes.get", r#"{"sku":"A1"}"#.into()).await.unwrap();
    assert!(ok.headers.is_none());

    let spans = h.recorder.wait_for(|s| count(s, "process quotes.get") == 2).await;
    let panicked = named(&spans, "process quotes.get")
        .into_iter()
        .find(|s| attr_str(s, "error.type").as_deref() == Some("panic"))
        .expect("a span with error.type = panic");
    assert!(
        matches!(&panicked.status, Status::Error { description } if description.contains("pricing engine exploded"))
    );
    assert!(!running.is_finished());
    running.stop().await.unwrap();
}

#[tokio::test]
async fn string_and_unit_replies_and_subject_extractor() {
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(echo).handler(ping)).await;

    let reply = h.client.request("echo.text", "héllo".into()).await.unwrap();
    assert_eq!(&reply.payload[..], "echo.text: héllo".as_bytes());
    let reply = h.client.request("ping", "".into()).await.unwrap();
    assert!(reply.payload.is_empty() && reply.headers.is_none());

    // Invalid UTF-8 for a `String` argument is a rejection.
    let reply = h.client.request("echo.text", vec![0xc3, 0x28].into()).await.unwrap();
    let headers = reply.headers.unwrap();
    assert_eq!(headers.get(NATS_SERVICE_ERROR_CODE).unwrap().as_str(), "400");
    assert!(headers.get(NATS_SERVICE_ERROR).unwrap().as_str().starts_with("payload is not UTF-8"));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn handlers_stay_callable_as_written() {
    // The macro keeps the function: unit tests can call it directly.
    let Json(q) = quote(Json(QuoteRequest { sku: "A1".into() })).await.unwrap();
    assert_eq!(q.cents, 1250);
    assert!(matches!(quote(Json(QuoteRequest { sku: "x".into() })).await, Err(PricingError::UnknownSku(_))));
    assert_eq!(echo("hi".into(), Subject::from("s")).await, "s: hi");
}
