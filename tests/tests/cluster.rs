//! A 3-node nats-server cluster on loopback (RELIABILITY.md, scenario 3): a
//! 3-replica stream keeps serving publishers and a `#[jetstream_consumer]` when its
//! leader is killed; queue-group members on two services keep answering requests
//! when one service stops.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use common::*;
use nats_otel_runtime::prelude::*;
use nats_otel_runtime::publisher::PublishRetry;
use nats_otel_runtime::testing::{NatsCluster, SpanRecorder};
use opentelemetry::trace::Status;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SpanData;

/// A client that connects to `first` and fails over to the other running nodes.
async fn connect_preferring(cluster: &NatsCluster, first: &str) -> async_nats::Client {
    let index: usize = first.trim_start_matches('n').parse().unwrap();
    let preferred = cluster.nodes()[index].url();
    let mut urls = vec![preferred.clone()];
    urls.extend(cluster.urls().into_iter().filter(|u| *u != preferred));
    async_nats::ConnectOptions::new().retain_servers_order().connect(urls.as_slice()).await.unwrap()
}

#[derive(Debug, Serialize, Deserialize)]
struct Item {
    id: u64,
}

#[jetstream_consumer(stream = "CLUSTER", durable = "cluster", ack_wait = "2s", concurrency = 16)]
async fn cluster_consumer(Json(item): Json<Item>, State(seen): State<Seen>) {
    seen.add(item.id).await;
}

#[tokio::test]
async fn the_stream_leader_killed_mid_stream_loses_nothing() {
    const N: u64 = 3_000;
    const PUBLISHERS: u64 = 2;
    let recorder = SpanRecorder::install();
    let mut cluster = NatsCluster::start(3).await.unwrap();
    let admin = cluster.connect().await.unwrap();
    let mut js = jetstream::new(admin.clone());
    js.set_timeout(Duration::from_secs(10));
    let mut stream = js
        .create_stream(stream::Config {
            name: "CLUSTER".into(),
            subjects: vec!["cluster.>".into()],
            storage: stream::StorageType::File,
            num_replicas: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    let leader = stream.info().await.unwrap().cluster.as_ref().and_then(|c| c.leader.clone()).unwrap();

    // The consumer and the publishers are connected to the leader: killing it
    // takes their connections too.
    let seen = Seen::default();
    let consuming = spawn(
        NatsService::new(connect_preferring(&cluster, &leader).await)
            .state(seen.clone())
            .handler(cluster_consumer),
    )
    .await;
    let publisher = Publisher::new(connect_preferring(&cluster, &leader).await)
        .retry(PublishRetry::new(60, Duration::from_millis(100)).max_backoff(Duration::from_secs(1)));
    let published = Progress::default();
    let publishing = ItemPublishers::start(&publisher, "cluster.items", N, PUBLISHERS, &published);
    published.reach(N / 5, "a fifth published").await;

    assert!(cluster.kill(&leader), "no node {leader}");
    let published_at_kill = published.get();
    let processed_at_kill = seen.ids.lock().await.len();

    let acks = publishing.finish(180).await;
    let failed: Vec<_> = acks.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(failed.is_empty(), "every publish succeeded: {failed:?}");
    seen.wait_distinct(N as usize).await;
    let survivors = cluster.connect().await.unwrap();
    let mut stream = jetstream::new(survivors).get_stream("CLUSTER").await.unwrap();
    settled(&stream, "cluster", 90).await;
    assert!(!consuming.is_finished(), "the consumer rode out the failover");
    consuming.stop().await.unwrap();

    let stream_info = stream.info().await.unwrap().clone();
    let new_leader = stream_info.cluster.as_ref().and_then(|c| c.leader.clone()).unwrap();
    assert_ne!(new_leader, leader, "a new leader took over");
    assert_eq!(stream_info.state.messages, N, "stored once each");
    let ids = seen.ids.lock().await;
    assert_eq!(ids.len() as u64, N, "every id processed");
    let processed: usize = ids.values().sum();
    let duplicates = ids.values().filter(|n| **n > 1).count();
    let spans = recorder.spans();
    let sends = named(&spans, "send cluster.items");
    assert!(sends.iter().all(|s| s.status == Status::Unset), "no send span failed");
    let retried = sends
        .iter()
        .filter(|s| attr_i64(s, "messaging.nats.jetstream.publish_attempts").unwrap_or(1) > 1)
        .count();
    let already_stored = acks.iter().filter(|a| a.as_ref().is_ok_and(|a| a.duplicate)).count();
    assert!((published_at_kill as u64) < N, "killed mid-publish");
    println!(
        "cluster failover: sent {N} (published {published_at_kill} and processed {processed_at_kill} when {leader} \
         was killed; new leader {new_leader}), stored {}, processed {processed}, distinct {}, lost 0, \
         duplicates processed {duplicates}, publishes retried {retried}, \
         retries found already stored {already_stored}",
        stream_info.state.messages,
        ids.len(),
    );
}

#[nats_subscribe("cluster.work", queue = "workers")]
async fn worker(Json(id): Json<u64>, State(name): State<&'static str>) -> Json<(u64, &'static str)> {
    Json((id, name))
}

#[tokio::test]
async fn queue_group_members_on_two_services_keep_answering_when_one_stops() {
    const N: u64 = 600;
    let _recorder = SpanRecorder::install();
    let cluster = NatsCluster::start(3).await.unwrap();
    let a =
        spawn(NatsService::new(connect_preferring(&cluster, "n0").await).state("a").handler(worker)).await;
    let b =
        spawn(NatsService::new(connect_preferring(&cluster, "n1").await).state("b").handler(worker)).await;
    let requester = async_nats::ConnectOptions::new()
        .retain_servers_order()
        .request_timeout(Some(Duration::from_secs(5)))
        .connect(cluster.nodes()[2].url())
        .await
        .unwrap();
    // Interest in the queue group reaches n2 over the routes shortly after the
    // subscriptions: wait until both members have answered once.
    let mut answered_by: HashMap<&str, usize> = HashMap::new();
    within_secs(30, "both members answer", async {
        while answered_by.len() < 2 {
            if let Ok(reply) = requester.request("cluster.work", "0".into()).await {
                let (_, name): (u64, String) = serde_json::from_slice(&reply.payload).unwrap();
                *answered_by.entry(if name == "a" { "a" } else { "b" }).or_default() += 1;
            }
        }
    })
    .await;

    let answered = Progress::default();
    let requesting = tokio::spawn({
        let (requester, answered) = (requester.clone(), answered.clone());
        async move {
            let mut replies = Vec::new();
            let mut retries = 0;
            for id in 1..=N {
                // Core NATS is at most once: a request routed to a member while it
                // unsubscribes can go unanswered; the requester retries (counted).
                let mut attempts = 0;
                let reply = loop {
                    attempts += 1;
                    match requester.request("cluster.work", serde_json::to_vec(&id).unwrap().into()).await {
                        Ok(reply) => break reply,
                        Err(e) if attempts < 3 => {
                            eprintln!("request {id}: {e}; retrying");
                            retries += 1;
                        }
                        Err(e) => panic!("request {id} failed {attempts} times: {e}"),
                    }
                };
                let (echo, name): (u64, String) = serde_json::from_slice(&reply.payload).unwrap();
                assert_eq!(echo, id);
                replies.push((id, name));
                answered.advance();
            }
            (replies, retries)
        }
    });
    answered.reach(N / 3, "a third answered").await;
    a.stop().await.unwrap();
    let stopped_at = answered.get() as u64;
    let (replies, retries) = within_secs(120, "every request answered", requesting).await.unwrap();
    b.stop().await.unwrap();

    assert_eq!(replies.len() as u64, N, "every request answered");
    let by_a_before = replies.iter().filter(|(id, name)| *id <= stopped_at && name == "a").count();
    let by_a_after = replies.iter().filter(|(id, name)| *id > stopped_at + 1 && name == "a").count();
    assert!(by_a_before > 0, "both members took work before the stop");
    assert_eq!(by_a_after, 0, "the stopped service answered nothing after its stop returned");
    assert!(stopped_at < N, "stopped mid-run");
    println!(
        "queue group: sent {N} requests, answered {} ({by_a_before} by a before its stop after {stopped_at}, the rest by b), \
         lost 0, requests retried {retries}",
        replies.len(),
    );
}

#[nats_subscribe("cluster.whoami")]
async fn whoami(Json(n): Json<u64>) -> Json<u64> {
    Json(n)
}

/// `messaging.client.id`, `server.address` and `server.port` of a span.
fn connection_of(span: &SpanData) -> (Option<String>, Option<String>, Option<i64>) {
    (attr_str(span, "messaging.client.id"), attr_str(span, "server.address"), attr_i64(span, "server.port"))
}

fn connection(info: &async_nats::ServerInfo) -> (Option<String>, Option<String>, Option<i64>) {
    (Some(info.client_id.to_string()), Some(info.host.clone()), Some(i64::from(info.port)))
}

#[tokio::test]
async fn after_a_failover_spans_and_metrics_name_the_new_server_and_client_id() {
    let recorder = SpanRecorder::install();
    // Process-global, as the recorder: no other test here reads metrics.
    let exporter = InMemoryMetricExporter::default();
    let meters =
        SdkMeterProvider::builder().with_reader(PeriodicReader::builder(exporter.clone()).build()).build();
    opentelemetry::global::set_meter_provider(meters.clone());
    let mut cluster = NatsCluster::start(3).await.unwrap();
    let client = connect_preferring(&cluster, "n0").await;
    let before = client.server_info();
    assert_eq!(before.port, cluster.nodes()[0].port());
    let service = spawn(NatsService::new(client.clone()).handler(whoami)).await;
    let publisher = Publisher::new(client.clone());
    let requester = async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_secs(2)))
        .connect(cluster.nodes()[2].url())
        .await
        .unwrap();
    // Interest crosses the routes shortly after subscribing (and again after
    // the failover): ask until answered.
    let ask = |n: u64| {
        let requester = requester.clone();
        within_secs(30, "the handler answers", async move {
            while requester.request("cluster.whoami", n.to_string().into()).await.is_err() {}
        })
    };
    ask(1).await;
    publisher.publish("cluster.note", "1").await.unwrap();

    assert!(cluster.kill("n0"));
    within_secs(30, "the client reconnects to another node", async {
        while client.server_info().server_id == before.server_id {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let after = client.server_info();
    assert_ne!(after.port, before.port);
    ask(2).await;
    publisher.publish("cluster.note", "2").await.unwrap();
    service.stop().await.unwrap();

    let spans = recorder.wait_for(|s| count(s, "send cluster.note") == 2).await;
    let processes = named(&spans, "process cluster.whoami");
    let sends = named(&spans, "send cluster.note");
    assert_eq!(connection_of(processes[0]), connection(&before), "first answer, on n0");
    assert_eq!(
        connection_of(processes[processes.len() - 1]),
        connection(&after),
        "last answer, after the failover"
    );
    assert_eq!(connection_of(sends[0]), connection(&before));
    assert_eq!(connection_of(sends[1]), connection(&after));

    meters.force_flush().unwrap();
    let points = points(&exporter);
    let via = |port: u16| move |p: &Point| p.attr("server.port") == Some(port.to_string().as_str());
    for server in [before.port, after.port] {
        let consumed = total(&points, "messaging.client.consumed.messages", via(server));
        assert!(consumed >= 1.0, "consumed via {server}: {points:?}");
        let sent = total(&points, "messaging.client.sent.messages", via(server));
        assert_eq!(sent, 1.0, "sent via {server}: {points:?}");
    }
    // Relabelled, not doubled; the other tests' endpoints are on their own clusters' ports.
    let in_flight = |port: u16| {
        points.iter().filter(|p| p.metric == "messaging.nats.handlers.in_flight" && via(port)(p)).count()
    };
    assert_eq!((in_flight(before.port), in_flight(after.port)), (0, 1), "{points:?}");
    // One reconnection (to the second node), labelled with the server first connected to.
    let reconnects = reported(&points, "messaging.nats.client.reconnects", via(before.port));
    assert!(reconnects >= 1.0, "reconnects {reconnects}: {points:?}");
}
