//! Services and the publisher against servers that require authentication:
//! an nkey user, and TLS with a certificate the client must verify. (Token and
//! user/password: `hostile_input.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use nats_otel_runtime::prelude::*;
use nats_otel_runtime::testing::{NatsServer, SpanRecorder};
use tests::tls::Certificates;

#[nats_subscribe("auth.*")]
async fn echo(body: Bytes) -> Bytes {
    body
}

/// A request through the traced publisher, answered by a service: one trace.
async fn serves_and_traces(recorder: &SpanRecorder, client: async_nats::Client) {
    let running = spawn(NatsService::new(client.clone()).handler(echo)).await;
    let reply = Publisher::new(client).request("auth.echo", "hello").await.unwrap();
    assert_eq!(&reply.payload[..], b"hello");
    let spans =
        recorder.wait_for(|s| count(s, "process auth.*") == 1 && count(s, "request auth.echo") == 1).await;
    let (request, process) = (one(&spans, "request auth.echo"), one(&spans, "process auth.*"));
    assert_eq!(process.span_context.trace_id(), request.span_context.trace_id());
    assert_eq!(process.parent_span_id, request.span_context.span_id());
    running.stop().await.unwrap();
}

#[tokio::test]
async fn an_nkey_user_serves_and_publishes_with_spans() {
    let recorder = SpanRecorder::install();
    let user = nkeys::KeyPair::new_user();
    let server = NatsServer::with_config(&format!(
        "authorization {{ users = [ {{ nkey: \"{}\" }} ] }}",
        user.public_key()
    ))
    .unwrap();
    assert!(server.connect().await.is_err(), "the server does require the nkey");
    let wrong = nkeys::KeyPair::new_user().seed().unwrap();
    assert!(
        async_nats::ConnectOptions::with_nkey(wrong).connect(server.url()).await.is_err(),
        "another key is refused"
    );
    let client =
        async_nats::ConnectOptions::with_nkey(user.seed().unwrap()).connect(server.url()).await.unwrap();
    serves_and_traces(&recorder, client).await;
}

#[tokio::test]
async fn a_tls_server_serves_and_publishes_with_spans() {
    let recorder = SpanRecorder::install();
    let certificates = Certificates::generate().unwrap();
    let server = NatsServer::with_config(&format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\" }}\nauthorization {{ token: \"s3cret\" }}",
        certificates.path_str("server.pem"),
        certificates.path_str("server-key.pem"),
    ))
    .unwrap();
    assert!(
        async_nats::ConnectOptions::with_token("s3cret".into()).connect(server.url()).await.is_err(),
        "without the CA the client does not trust the server"
    );
    let client = async_nats::ConnectOptions::with_token("s3cret".into())
        .add_root_certificates(certificates.path_str("ca.pem").into())
        .require_tls(true)
        .connect(server.url())
        .await
        .unwrap();
    serves_and_traces(&recorder, client).await;
}
