//! Bad input never panics and never stops a service; services work against
//! servers that require authentication.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use nats_otel_runtime::NATS_SERVICE_ERROR_CODE;
use nats_otel_runtime::prelude::*;
use nats_otel_runtime::testing::NatsServer;
use opentelemetry::trace::SpanId;

#[derive(Debug, Deserialize, Serialize)]
struct Ping {
    n: u64,
}

#[nats_subscribe("hostile.*")]
async fn echo(Json(ping): Json<Ping>) -> Json<Ping> {
    Json(ping)
}

#[tokio::test]
async fn garbage_oversized_and_repeated_trace_headers_give_root_spans_and_answers() {
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(echo)).await;
    let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let huge = "x".repeat(60_000);
    let mut cases: Vec<HeaderMap> = Vec::new();
    for value in
        ["", "-", "00--00-01", &huge, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", "ÿÿÿ"]
    {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", value);
        headers.insert("tracestate", huge.as_str());
        headers.insert("baggage", huge.as_str());
        cases.push(headers);
    }
    // The same header repeated: the first value is used when it is valid.
    let mut repeated = HeaderMap::new();
    repeated.append("traceparent", valid);
    repeated.append("traceparent", "garbage");
    cases.push(repeated);

    let total = cases.len();
    for headers in cases {
        let reply =
            h.client.request_with_headers("hostile.ping", headers, r#"{"n":1}"#.into()).await.unwrap();
        assert!(reply.headers.is_none(), "answered normally");
        assert_eq!(&reply.payload[..], br#"{"n":1}"#);
    }
    let spans = h.recorder.wait_for(|s| count(s, "process hostile.*") == total).await;
    let roots =
        named(&spans, "process hostile.*").iter().filter(|s| s.parent_span_id == SpanId::INVALID).count();
    assert_eq!(roots, total - 1, "every malformed context gives a root span");
    assert_eq!(
        named(&spans, "process hostile.*")
            .iter()
            .filter(|s| s.parent_span_id.to_string() == "00f067aa0ba902b7")
            .count(),
        1,
        "the repeated header's valid first value is the parent"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_payload_at_the_servers_max_is_rejected_cleanly_and_the_service_goes_on() {
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(echo)).await;
    let max = h.client.server_info().max_payload;
    // Not JSON, as large as the server allows (minus the headers' room).
    let big = vec![b'['; max - 1024];
    let reply = h.client.request("hostile.big", big.into()).await.unwrap();
    assert_eq!(reply.headers.unwrap().get(NATS_SERVICE_ERROR_CODE).unwrap().as_str(), "400");
    let reply = h.client.request("hostile.small", r#"{"n":2}"#.into()).await.unwrap();
    assert_eq!(&reply.payload[..], br#"{"n":2}"#);
    running.stop().await.unwrap();
}

async fn serves_with(server: &NatsServer, options: async_nats::ConnectOptions) {
    let client = options.connect(server.url()).await.unwrap();
    let running = spawn(NatsService::new(client.clone()).handler(echo)).await;
    let reply = Publisher::new(client).request("hostile.auth", r#"{"n":3}"#).await.unwrap();
    assert_eq!(&reply.payload[..], br#"{"n":3}"#);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn services_work_against_servers_that_require_a_token_or_a_password() {
    let _recorder = nats_otel_runtime::testing::SpanRecorder::install();
    let token = NatsServer::with_config("authorization { token: \"s3cret\" }").unwrap();
    assert!(token.connect().await.is_err(), "the server does require the token");
    serves_with(&token, async_nats::ConnectOptions::with_token("s3cret".into())).await;

    let users =
        NatsServer::with_config("authorization { users = [ { user: \"svc\", password: \"pw\" } ] }").unwrap();
    assert!(users.connect().await.is_err(), "the server does require a user");
    serves_with(&users, async_nats::ConnectOptions::with_user_and_password("svc".into(), "pw".into())).await;
}

#[derive(Debug, Serialize, Deserialize, NatsMessage)]
#[nats(subject = "hostile.typed.{key}")]
struct Keyed {
    key: String,
}

#[nats_subscribe(message = Keyed)]
async fn keyed(_message: Keyed) {}

/// Found while writing the fuzz target's rendering invariant: a field value NATS
/// treats as data (braces) passed the token check but the publisher then refused
/// the rendered subject as if it were a capture written in code.
#[tokio::test]
async fn typed_messages_whose_fields_hold_braces_are_published_and_received() {
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(keyed)).await;
    let publisher = Publisher::new(h.client.clone());
    for key in ["{x}", "a}", "{"] {
        let message = Keyed { key: key.to_owned() };
        assert_eq!(message.subject().unwrap(), format!("hostile.typed.{key}"));
        publisher.publish_message(&message).await.unwrap();
    }
    let spans = h.recorder.wait_for(|s| count(s, "process hostile.typed.{key}") == 3).await;
    let mut received: Vec<String> = named(&spans, "process hostile.typed.{key}")
        .iter()
        .map(|s| attr_str(s, "messaging.destination.name").unwrap())
        .collect();
    received.sort();
    assert_eq!(received, ["hostile.typed.a}", "hostile.typed.{", "hostile.typed.{x}"]);
    running.stop().await.unwrap();
}
