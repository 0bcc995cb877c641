//! The delivery metadata of a JetStream message, read from its reply subject:
//! nats-otel reads the common form itself, in one pass, and must say exactly
//! what async-nats says, on any input.
#![no_main]

use std::sync::OnceLock;

use async_nats::jetstream;
use libfuzzer_sys::fuzz_target;
use nats_otel_runtime::JetStreamInfo;

/// A JetStream context whose client never connects: async-nats reads a
/// message's metadata without the server.
fn context() -> &'static jetstream::Context {
    static CONTEXT: OnceLock<(tokio::runtime::Runtime, jetstream::Context)> = OnceLock::new();
    let (_, context) = CONTEXT.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let context = runtime.block_on(async {
            let options = async_nats::ConnectOptions::new().retry_on_initial_connect();
            jetstream::new(options.connect("127.0.0.1:1").await.unwrap())
        });
        (runtime, context)
    });
    context
}

// Input: the reply subject.
fuzz_target!(|data: &[u8]| {
    let reply = String::from_utf8_lossy(data);
    let message = jetstream::Message {
        message: async_nats::Message {
            subject: "orders.created".into(),
            reply: Some(reply.as_ref().into()),
            payload: bytes::Bytes::new(),
            headers: None,
            status: None,
            description: None,
            length: 0,
        },
        context: context().clone(),
    };
    let by_async_nats = message.info().ok().map(JetStreamInfo::from);
    assert_eq!(JetStreamInfo::read(&message), by_async_nats, "{reply:?}");
});
