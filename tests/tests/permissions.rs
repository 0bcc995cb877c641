//! Publishes the server's permissions deny surface as typed errors naming the
//! subject (subscriptions: `service_lifecycle.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use nats_otel_runtime::events::PermissionViolation;
use nats_otel_runtime::testing::{NatsServer, SpanRecorder};
use nats_otel_runtime::{
    ClientEvents, PublishErrorKind, Publisher, RequestErrorKind, StreamPublishErrorKind,
};

const CONFIG: &str = r#"
authorization {
  users = [
    { user: "app", password: "pw", permissions: { publish: { allow: [">"], deny: ["secret.>"] }, subscribe: { allow: [">"] } } }
  ]
}
"#;

async fn connect(server: &NatsServer) -> (Publisher, ClientEvents) {
    let events = ClientEvents::new();
    let client = events
        .attach(async_nats::ConnectOptions::with_user_and_password("app".into(), "pw".into()))
        .request_timeout(Some(std::time::Duration::from_secs(30)))
        .connect(server.url())
        .await
        .unwrap();
    (Publisher::new(client).events(&events), events)
}

#[tokio::test]
async fn a_denied_request_fails_at_once_with_an_error_naming_the_subject() {
    let recorder = SpanRecorder::install();
    let server = NatsServer::with_config(CONFIG).unwrap();
    let (publisher, _events) = connect(&server).await;

    // The request timeout is 30 s: a `PermissionDenied` within the test's 20 s
    // bound can only come from the server's report.
    let err = within("the denial", publisher.request("secret.ask", "?")).await.unwrap_err();
    assert_eq!(err.kind(), RequestErrorKind::PermissionDenied);
    assert!(err.to_string().contains("`secret.ask`"), "{err}");

    let spans = recorder.wait_for(|s| count(s, "request secret.ask") == 1).await;
    let span = one(&spans, "request secret.ask");
    assert_eq!(attr_str(span, "error.type").as_deref(), Some("permission_denied"));
}

#[tokio::test]
async fn a_denied_jetstream_publish_fails_at_once_with_an_error_naming_the_subject() {
    let recorder = SpanRecorder::install();
    let server = NatsServer::with_config(CONFIG).unwrap();
    let (publisher, _events) = connect(&server).await;
    let js = async_nats::jetstream::new(publisher.client().clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "SECRETS".into(),
        subjects: vec!["secret.>".into(), "open.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();

    publisher.publish_to_stream("open.js", "fine").await.unwrap();
    let err = within("the denial", publisher.publish_to_stream("secret.js", "no")).await.unwrap_err();
    assert_eq!(err.kind(), StreamPublishErrorKind::PermissionDenied);
    assert!(err.to_string().contains("`secret.js`"), "{err}");
    let spans = recorder.wait_for(|s| count(s, "send secret.js") == 1).await;
    assert_eq!(attr_str(one(&spans, "send secret.js"), "error.type").as_deref(), Some("permission_denied"));
}

#[tokio::test]
async fn fire_and_forget_publishes_report_a_denial_the_server_has_made() {
    let recorder = SpanRecorder::install();
    let server = NatsServer::with_config(CONFIG).unwrap();
    let (publisher, events) = connect(&server).await;
    let mut seen = events.subscribe();

    // NATS does not acknowledge core publishes: the first one cannot know.
    publisher.publish("secret.note", "1").await.unwrap();
    publisher.publish("open.note", "ok").await.unwrap();
    let violation = within("the server's report", async {
        loop {
            if let Some(violation) = PermissionViolation::from_event(&seen.recv().await.unwrap()) {
                break violation;
            }
        }
    })
    .await;
    assert_eq!(violation, PermissionViolation::Publish { subject: "secret.note".into() });

    let err = publisher.publish("secret.note", "2").await.unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::PermissionDenied);
    assert!(err.to_string().contains("`secret.note`"), "{err}");
    publisher.publish("open.note", "still fine").await.unwrap();

    let spans = recorder.wait_for(|s| count(s, "send secret.note") == 2).await;
    let failed: Vec<_> = named(&spans, "send secret.note")
        .into_iter()
        .filter(|s| attr_str(s, "error.type").as_deref() == Some("permission_denied"))
        .collect();
    assert_eq!(failed.len(), 1, "the second publish's span is marked failed");
    assert!(named(&spans, "send open.note").iter().all(|s| attr(s, "error.type").is_none()));
}
