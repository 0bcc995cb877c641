//! Key-value watches: puts, deletes and purges each reach the handler once, in
//! order, typed through the codecs; `history` says where a watch starts; a
//! value that does not decode fails its own span and the watch goes on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use common::*;
use nats_otel_runtime::prelude::*;
use nats_otel_runtime::{KvEntry, KvOperation};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
struct Tenant {
    plan: String,
}

/// One change as the handler saw it: key, operation, the plan of a put, revision.
type Change = (String, KvOperation, Option<String>, u64);

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Change>>>);

impl Seen {
    fn changes(&self) -> Vec<(String, KvOperation, Option<String>)> {
        self.0.lock().unwrap().iter().map(|(k, o, v, _)| (k.clone(), *o, v.clone())).collect()
    }
    async fn reach(&self, n: usize) {
        within("the watch", async {
            while self.0.lock().unwrap().len() < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        // Nothing more may come.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn record(seen: &Seen, entry: KvEntry<Json<Tenant>>) {
    let plan = entry.value.map(|Json(tenant)| tenant.plan);
    seen.0.lock().unwrap().push((entry.key, entry.operation, plan, entry.revision));
}

#[kv_watch(bucket = "config", key = "tenants.>")]
async fn on_tenant(State(seen): State<Seen>, entry: KvEntry<Json<Tenant>>) {
    record(&seen, entry);
}

#[kv_watch(bucket = "config", key = "tenants.>", history = "all")]
async fn every_revision(State(seen): State<Seen>, entry: KvEntry<Json<Tenant>>) {
    record(&seen, entry);
}

#[kv_watch(bucket = "config", history = "updates_only")]
async fn updates_only(State(seen): State<Seen>, entry: KvEntry<Json<Tenant>>) {
    record(&seen, entry);
}

async fn bucket(client: &async_nats::Client) -> kv::Store {
    jetstream::new(client.clone())
        .create_key_value(kv::Config { bucket: "config".into(), history: 10, ..Default::default() })
        .await
        .unwrap()
}

fn tenant(plan: &str) -> bytes::Bytes {
    serde_json::to_vec(&Tenant { plan: plan.into() }).unwrap().into()
}

#[tokio::test]
async fn puts_deletes_and_purges_each_reach_the_handler_once_in_order() {
    let h = start().await;
    let store = bucket(&h.client).await;
    let seen = Seen::default();
    let running = spawn(NatsService::with_state(h.client.clone(), seen.clone()).handler(on_tenant)).await;

    store.put("tenants.a", tenant("free")).await.unwrap();
    store.put("tenants.b", tenant("free")).await.unwrap();
    store.put("other.x", tenant("ignored")).await.unwrap();
    store.put("tenants.a", tenant("pro")).await.unwrap();
    store.delete("tenants.b").await.unwrap();
    store.purge("tenants.a").await.unwrap();
    seen.reach(5).await;
    let put = |key: &str, plan: &str| (key.to_owned(), KvOperation::Put, Some(plan.to_owned()));
    assert_eq!(
        seen.changes(),
        [
            put("tenants.a", "free"),
            put("tenants.b", "free"),
            put("tenants.a", "pro"),
            ("tenants.b".to_owned(), KvOperation::Delete, None),
            ("tenants.a".to_owned(), KvOperation::Purge, None),
        ]
    );
    let revisions: Vec<u64> = seen.0.lock().unwrap().iter().map(|(.., r)| *r).collect();
    assert_eq!(revisions, [1, 2, 4, 5, 6], "revisions are the bucket's sequences");

    let spans = h.recorder.wait_for(|s| count(s, "process $KV.config.tenants.>") == 5).await;
    let purge = named(&spans, "process $KV.config.tenants.>")
        .into_iter()
        .find(|s| attr_str(s, "messaging.nats.kv.operation").as_deref() == Some("purge"))
        .expect("a purge span");
    assert_eq!(attr_str(purge, "messaging.nats.kv.key").as_deref(), Some("tenants.a"));
    assert_eq!(attr_str(purge, "messaging.nats.kv.bucket").as_deref(), Some("config"));
    assert_eq!(attr_i64(purge, "messaging.nats.kv.revision"), Some(6));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn history_says_where_a_watch_starts() {
    let h = start().await;
    let store = bucket(&h.client).await;
    store.put("tenants.a", tenant("free")).await.unwrap();
    store.put("tenants.a", tenant("pro")).await.unwrap();
    store.put("tenants.b", tenant("free")).await.unwrap();

    // Latest (default): each key's current entry.
    let latest = Seen::default();
    let running = spawn(NatsService::with_state(h.client.clone(), latest.clone()).handler(on_tenant)).await;
    latest.reach(2).await;
    let plans: Vec<_> = latest.changes().into_iter().map(|(k, _, v)| (k, v.unwrap())).collect();
    assert_eq!(plans, [("tenants.a".into(), "pro".into()), ("tenants.b".into(), "free".into())]);
    running.stop().await.unwrap();

    // All: every revision kept.
    let all = Seen::default();
    let running = spawn(NatsService::with_state(h.client.clone(), all.clone()).handler(every_revision)).await;
    all.reach(3).await;
    assert_eq!(all.changes().len(), 3);
    running.stop().await.unwrap();

    // Updates only: nothing until a change.
    let updates = Seen::default();
    let running =
        spawn(NatsService::with_state(h.client.clone(), updates.clone()).handler(updates_only)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(updates.changes().is_empty(), "{:?}", updates.changes());
    store.put("tenants.c", tenant("team")).await.unwrap();
    updates.reach(1).await;
    assert_eq!(updates.changes(), [("tenants.c".into(), KvOperation::Put, Some("team".into()))]);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_value_that_does_not_decode_fails_its_span_and_the_watch_goes_on() {
    let h = start().await;
    let store = bucket(&h.client).await;
    let seen = Seen::default();
    let running = spawn(NatsService::with_state(h.client.clone(), seen.clone()).handler(on_tenant)).await;
    store.put("tenants.bad", "{not json".into()).await.unwrap();
    store.put("tenants.ok", tenant("free")).await.unwrap();
    seen.reach(1).await;
    assert_eq!(seen.changes(), [("tenants.ok".into(), KvOperation::Put, Some("free".into()))]);
    let spans = h.recorder.wait_for(|s| count(s, "process $KV.config.tenants.>") == 2).await;
    let failed: Vec<_> = named(&spans, "process $KV.config.tenants.>")
        .into_iter()
        .filter(|s| matches!(s.status, opentelemetry::trace::Status::Error { .. }))
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(attr_str(failed[0], "messaging.nats.kv.key").as_deref(), Some("tenants.bad"));
    running.stop().await.unwrap();
}

/// A raw-protocol publisher forging an entry with an unknown `KV-Operation`:
/// the handler is not called, the span says why, and the watch goes on.
#[tokio::test]
async fn a_forged_kv_operation_is_refused_and_the_watch_goes_on() {
    let h = start().await;
    let store = bucket(&h.client).await;
    let seen = Seen::default();
    let running = spawn(NatsService::with_state(h.client.clone(), seen.clone()).handler(on_tenant)).await;
    let mut raw = nats_otel_runtime::testing::RawPublisher::connect(&h.server).await.unwrap();
    let block = nats_otel_runtime::testing::RawPublisher::header_block(["KV-Operation: EXPLODE"]);
    raw.publish("$KV.config.tenants.forged", &block, b"{}").await.unwrap();
    raw.flush().await.unwrap();
    store.put("tenants.ok", tenant("free")).await.unwrap();
    seen.reach(1).await;
    assert_eq!(seen.changes(), [("tenants.ok".into(), KvOperation::Put, Some("free".into()))]);
    let spans = h.recorder.wait_for(|s| count(s, "process $KV.config.tenants.>") == 2).await;
    let refused: Vec<_> = named(&spans, "process $KV.config.tenants.>")
        .into_iter()
        .filter(|s| attr_str(s, "error.type").as_deref() == Some("kv_operation"))
        .collect();
    assert_eq!(refused.len(), 1, "{:?}", names(&spans));
    running.stop().await.unwrap();
}
