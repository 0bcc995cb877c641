//! `OTEL_SEMCONV_STABILITY_OPT_IN=messaging/dup` adds the older attribute names the
//! seed spec uses. A test binary of its own: the variable is read once per process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(unsafe_code)] // `std::env::set_var`, once, before anything reads the environment.

mod common;

use common::*;
use nats_otel_runtime::prelude::*;

#[nats_subscribe("dup.check")]
async fn dup_check() {}

#[tokio::test]
async fn messaging_dup_emits_old_and_new_names() {
    // SAFETY of set_var: this binary's only test, before any thread reads the environment.
    unsafe { std::env::set_var("OTEL_SEMCONV_STABILITY_OPT_IN", "http,messaging/dup") };
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(dup_check)).await;
    Publisher::new(h.client.clone()).publish("dup.check", "").await.unwrap();
    let spans = h.recorder.wait_for(|s| count(s, "process dup.check") == 1).await;

    let port = i64::from(h.server.port());
    let process = one(&spans, "process dup.check");
    assert_eq!(attr_str(process, "messaging.operation").as_deref(), Some("process"));
    assert_eq!(attr_str(process, "messaging.operation.type").as_deref(), Some("process"));
    assert_eq!(attr_str(process, "net.peer.name").as_deref(), Some("127.0.0.1"));
    assert_eq!(attr_i64(process, "net.peer.port"), Some(port));
    assert_eq!(attr_i64(process, "server.port"), Some(port));

    let send = one(&spans, "send dup.check");
    assert_eq!(attr_str(send, "messaging.operation").as_deref(), Some("publish"));
    assert_eq!(attr_str(send, "net.peer.name").as_deref(), Some("127.0.0.1"));
    running.stop().await.unwrap();
}
