//! A property of the whole JetStream pipeline, against a real server: whatever
//! mix of hostile messages arrives (JetStream control headers, junk trace
//! context, large headers, payloads near `max_payload`, bodies that do not
//! decode) and whatever the user's code does with them (succeeds, fails for a
//! while or for good, panics in the extractor, the handler or the error's
//! `Display`), every stored message ends acked or dead-lettered with its letter
//! stored, none is lost, none has two letters, and the service keeps serving.
//!
//! Generated with proptest (a few cases per run; each runs a fresh server).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use nats_otel_runtime::prelude::*;
use nats_otel_runtime::testing::{Ledger, NatsServer, SpanRecorder};
use nats_otel_runtime::{Extractor, FromMessage, Incoming, JetStreamConsumer, Rejection, Retry};
use proptest::prelude::*;

/// What the user's code does with a message (its payload says so).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Act {
    Succeed,
    FailForAWhile,
    FailForGood,
    PanicInHandler,
    PanicInExtractor,
    PanicInErrorDisplay,
    /// Not JSON: the extractor rejects it.
    Undecodable,
}

#[derive(Debug, Clone)]
struct Hostile {
    act: Act,
    headers: Vec<(&'static str, String)>,
    padding: usize,
}

/// The server's `max_payload` in these tests.
const MAX_PAYLOAD: usize = 16 * 1024;

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        3 => Just(Act::Succeed),
        1 => Just(Act::FailForAWhile),
        1 => Just(Act::FailForGood),
        1 => Just(Act::PanicInHandler),
        1 => Just(Act::PanicInExtractor),
        1 => Just(Act::PanicInErrorDisplay),
        1 => Just(Act::Undecodable),
    ]
}

fn header() -> impl Strategy<Value = (&'static str, String)> {
    prop_oneof![
        "[a-z0-9]{1,8}".prop_map(|id| ("Nats-Msg-Id", id)),
        Just(("Nats-Expected-Stream", "ORDERS".to_owned())),
        Just(("Nats-Expected-Stream", "ELSEWHERE".to_owned())),
        Just(("Nats-TTL", "1h".to_owned())),
        Just(("Nats-Rollup", "sub".to_owned())),
        Just(("Nats-Expected-Last-Sequence", "999".to_owned())),
        "[ -~]{0,64}".prop_map(|junk| ("traceparent", junk)),
        Just(("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned())),
        (0usize..4000).prop_map(|n| ("X-Large", "h".repeat(n))),
        "[ -~]{0,32}".prop_map(|v| ("X-Tenant", v)),
    ]
}

fn hostile() -> impl Strategy<Value = Hostile> {
    let padding = prop_oneof![4 => 0usize..64, 1 => (MAX_PAYLOAD - 2048)..(MAX_PAYLOAD - 256)];
    (act(), proptest::collection::vec(header(), 0..4), padding).prop_map(|(act, headers, padding)| Hostile {
        act,
        headers,
        padding,
    })
}

#[derive(Debug, Serialize, Deserialize)]
struct Script {
    act: Act,
    padding: String,
}

/// Decodes the script, panicking when told to (a user's extractor).
#[derive(Debug)]
struct Scripted(Act);

impl Extractor for Scripted {}

impl<S> FromMessage<S> for Scripted {
    fn from_message(incoming: &Incoming, _: &S) -> Result<Self, Rejection> {
        let script: Script = serde_json::from_slice(incoming.payload())
            .map_err(|e| Rejection::new("undecodable", e.to_string()))?;
        if script.act == Act::PanicInExtractor {
            panic!("the extractor panics");
        }
        Ok(Scripted(script.act))
    }
}

#[derive(Debug)]
enum ScriptError {
    ForAWhile,
    ForGood,
    PanicsWhenDisplayed,
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PanicsWhenDisplayed => panic!("Display panics"),
            other => write!(f, "{other:?}"),
        }
    }
}

impl HandlerError for ScriptError {
    fn retry(&self) -> Retry {
        match self {
            Self::ForGood => Retry::Never,
            _ => Retry::Backoff,
        }
    }
}

async fn scripted(Scripted(act): Scripted) -> Result<(), ScriptError> {
    match act {
        Act::Succeed => Ok(()),
        Act::FailForAWhile => Err(ScriptError::ForAWhile),
        Act::FailForGood => Err(ScriptError::ForGood),
        Act::PanicInErrorDisplay => Err(ScriptError::PanicsWhenDisplayed),
        Act::PanicInHandler => panic!("the handler panics"),
        Act::PanicInExtractor | Act::Undecodable => unreachable!("stopped by the extractor"),
    }
}

fn payload(message: &Hostile) -> Vec<u8> {
    let padding = "p".repeat(message.padding);
    match message.act {
        Act::Undecodable => format!("{{not json {padding}").into_bytes(),
        act => serde_json::to_vec(&Script { act, padding }).unwrap(),
    }
}

/// Publishes every message, runs the service until every stored one is
/// settled, and checks where each ended.
async fn run_case(messages: Vec<Hostile>) {
    let _recorder = SpanRecorder::install();
    let server = NatsServer::with_config(&format!("max_payload: {MAX_PAYLOAD}")).unwrap();
    let client = server.connect().await.unwrap();
    let js = jetstream::new(client.clone());
    js.create_stream(stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        allow_message_ttl: true,
        ..Default::default()
    })
    .await
    .unwrap();
    js.create_stream(stream::Config {
        name: "DEAD".into(),
        subjects: vec!["dead.>".into()],
        // Smaller than some letters: those are stored without their payload.
        max_message_size: 8 * 1024,
        ..Default::default()
    })
    .await
    .unwrap();

    // What each stored message should become, by stream sequence.
    let mut expected = BTreeMap::new();
    for (i, message) in messages.iter().enumerate() {
        let mut headers = HeaderMap::new();
        for (name, value) in &message.headers {
            headers.append(*name, value.as_str());
        }
        let published =
            js.publish_with_headers(format!("orders.{i}"), headers, payload(message).into()).await;
        // The stream may refuse it (a wrong expected stream, no rollups) or
        // find it a duplicate: then there is nothing to account for.
        let Ok(Ok(ack)) = (match published {
            Ok(ack) => Ok(ack.await),
            Err(e) => Err(e),
        }) else {
            continue;
        };
        if !ack.duplicate {
            expected.insert(ack.sequence, message.act == Act::Succeed);
        }
    }

    let ledger = Ledger::watch(&client, "ORDERS", "scripted").await.unwrap();
    let consumer = JetStreamConsumer::new("ORDERS", "scripted")
        .ack_wait(Duration::from_secs(2))
        .max_deliver(3)
        // With a backoff the server takes its entries as the ack timeouts too:
        // entries of milliseconds would let a loaded machine exhaust messages
        // that succeed, which is the configuration's doing, not the pipeline's.
        .backoff([Duration::from_secs(1), Duration::from_secs(1)])
        .dead_letter("dead.orders")
        .concurrency(4);
    let running = NatsService::new(client.clone()).consume(consumer, scripted).start().await.unwrap().spawn();

    // Settled: nothing pending, and every message given up has its letter (the
    // letter of an exhausted delivery is written from the server's advisory,
    // a moment after the last delivery).
    let mut last = None;
    let settled = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let accounts = ledger.account(Some("DEAD")).await.unwrap();
            if accounts.is_settled() && accounts.acked.len() + accounts.dead_lettered.len() == expected.len()
            {
                return accounts;
            }
            last = Some(accounts);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let accounts = settled.unwrap_or_else(|_| {
        panic!(
            "not settled in 60 s: {last:?}, termed {:?}, exhausted {:?}",
            ledger.terminated(),
            ledger.exhausted()
        )
    });
    accounts.assert_nothing_lost();
    for (sequence, succeeds) in &expected {
        let (acked, lettered) =
            (accounts.acked.contains(sequence), accounts.dead_lettered.contains(sequence));
        assert_eq!((acked, lettered), (*succeeds, !*succeeds), "message {sequence}: {accounts}");
    }
    assert!(!running.is_finished(), "the service keeps serving");
    running.stop().await.unwrap();
}

proptest! {
    // Six cases by default (each runs a server); PROPTEST_CASES for a longer search.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(6),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_hostile_message_is_acked_or_dead_lettered_and_none_is_lost(
        messages in proptest::collection::vec(hostile(), 1..24)
    ) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(run_case(messages));
    }
}
