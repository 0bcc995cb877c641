//! The broker inside the trace: nats-server's message-path reports (ADR-41)
//! recorded as spans, against real servers: one server (client in, JetStream
//! store, client out), a 3-node cluster (a route, an R3 stream, a subscriber on
//! another node), a subject mapping, a denied publish, account-level
//! `msg_trace`, dry runs, and hostile reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use common::*;
use nats_otel_runtime::broker::{BrokerTracing, NATS_TRACE_DEST};
use nats_otel_runtime::broker_trace::{Collector, DEFAULT_DRY_RUN_WAIT, dry_run};
use nats_otel_runtime::prelude::*;
use nats_otel_runtime::testing::{NatsCluster, NatsServer, SpanRecorder};
use opentelemetry::Value;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{
    SpanContext, SpanId, Status, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use opentelemetry_sdk::trace::SpanData;

#[nats_subscribe("orders.*", queue = "shipping")]
async fn ship(headers: HeaderMap) -> String {
    headers.get(NATS_TRACE_DEST).map(|v| v.as_str().to_owned()).unwrap_or_default()
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| &kv.value)
}

fn text(span: &SpanData, key: &str) -> String {
    attribute(span, key).map(|v| v.as_str().into_owned()).unwrap_or_default()
}

fn event_text(span: &SpanData, event: &str, key: &str) -> Vec<String> {
    span.events
        .iter()
        .filter(|e| e.name == event)
        .filter_map(|e| e.attributes.iter().find(|kv| kv.key.as_str() == key))
        .map(|kv| kv.value.as_str().into_owned())
        .collect()
}

fn servers(spans: &[SpanData]) -> Vec<SpanData> {
    spans.iter().filter(|s| s.name.starts_with("nats-server ")).cloned().collect()
}

async fn orders_stream(client: &async_nats::Client, replicas: usize) {
    jetstream::new(client.clone())
        .create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            num_replicas: replicas,
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
}

fn tracing_publisher(client: &async_nats::Client, destination: &str) -> Publisher {
    Publisher::new(client.clone()).broker_tracing(BrokerTracing::new(destination).unwrap())
}

#[tokio::test]
async fn one_server_reports_ingress_store_and_delivery_under_the_send_span() {
    let h = start().await;
    orders_stream(&h.client, 1).await;
    let collecting = Collector::new(h.client.clone(), "traces.broker").start().await.unwrap();
    let running = spawn(NatsService::new(h.client.clone()).handler(ship)).await;

    let publisher = tracing_publisher(&h.client, "traces.broker");
    within("publish", publisher.publish("orders.eu", "{}")).await.unwrap();

    let spans = h
        .recorder
        .wait_for(|spans| !servers(spans).is_empty() && spans.iter().any(|s| s.name.starts_with("process")))
        .await;
    let hops = servers(&spans);
    assert_eq!(hops.len(), 1, "{hops:#?}");
    let hop = &hops[0];
    let request = spans.iter().find(|s| s.name == "send orders.eu").expect("the send span");
    assert_eq!(hop.span_context.trace_id(), request.span_context.trace_id());
    assert_eq!(hop.parent_span_id, request.span_context.span_id(), "under the publisher's span");
    let name = h.client.server_info().server_name;
    assert_eq!(hop.name, format!("nats-server {name}"));
    assert_eq!(text(hop, "messaging.nats.server.name"), name);
    assert_eq!(text(hop, "messaging.nats.server.id"), h.client.server_info().server_id);
    assert_eq!(text(hop, "messaging.nats.server.version"), h.client.server_info().version);
    assert_eq!(text(hop, "messaging.system"), "nats");
    assert_eq!(text(hop, "messaging.destination.name"), "orders.eu");
    assert_eq!(text(hop, "messaging.nats.ingress.kind"), "client");
    assert_eq!(text(hop, "messaging.nats.account"), "$G");
    assert!(attribute(hop, "messaging.nats.hop").is_none(), "the first server has no hop");
    assert_eq!(event_text(hop, "jetstream store", "messaging.nats.jetstream.stream"), ["ORDERS"]);
    assert_eq!(event_text(hop, "deliver", "messaging.nats.subscription"), ["orders.*"]);
    assert_eq!(event_text(hop, "deliver", "messaging.nats.queue"), ["shipping"]);
    assert_eq!(hop.status, Status::Unset);
    assert!(hop.start_time >= request.start_time && hop.end_time <= std::time::SystemTime::now());
    assert!(hop.start_time <= hop.end_time);

    running.stop().await.unwrap();
    let counts = collecting.stop().await;
    assert_eq!(
        (counts.reports, counts.spans, counts.malformed, counts.untraceable),
        (1, 1, 0, 0),
        "{counts:?}"
    );
}

#[tokio::test]
async fn broker_tracing_is_off_by_default_and_skips_unsampled_and_unchosen_publishes() {
    let h = start().await;
    let mut reports = h.client.subscribe("traces.>").await.unwrap();
    let running = spawn(NatsService::new(h.client.clone()).handler(ship)).await;

    let plain = Publisher::new(h.client.clone());
    let reply = within("plain", plain.request("orders.eu", "{}")).await.unwrap();
    assert_eq!(reply.payload, "", "no header without broker tracing");
    let never = tracing_publisher(&h.client, "traces.never")
        .broker_tracing(BrokerTracing::new("traces.never").unwrap().ratio(0.0));
    let reply = within("ratio 0", never.request("orders.eu", "{}")).await.unwrap();
    assert_eq!(reply.payload, "", "a ratio of 0 chooses none");

    // Unsampled: a parent that is not sampled makes the publish's span unsampled.
    let unsampled_parent = opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(7u128),
        SpanId::from(7u64),
        TraceFlags::default(),
        true,
        TraceState::NONE,
    ));
    let unsampled = tracing_publisher(&h.client, "traces.unsampled");
    let request = unsampled.request("orders.eu", "{}").with_context(unsampled_parent);
    let reply = within("unsampled", request).await.unwrap();
    assert_eq!(reply.payload, "", "an unsampled publish has no trace to join");

    let report =
        tokio::time::timeout(Duration::from_millis(300), futures_util::StreamExt::next(&mut reports)).await;
    assert!(report.is_err(), "no server reported: {report:?}");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_cluster_path_becomes_one_span_per_server_nested_by_hop() {
    let recorder = SpanRecorder::install();
    let cluster = NatsCluster::start(3).await.unwrap();
    let n0 = cluster.connect_to("n0").await.unwrap();
    let n1 = cluster.connect_to("n1").await.unwrap();
    let n2 = cluster.connect_to("n2").await.unwrap();
    orders_stream(&n0, 3).await;
    // A forwarded server's report waits for its forwarder's; on a loaded
    // machine the first server's (sent once the R3 stream has stored the
    // message) can come late, so wait longer than the default.
    let collecting =
        Collector::new(n2.clone(), "traces.broker").hop_wait(Duration::from_secs(5)).start().await.unwrap();
    let running = spawn(NatsService::new(n1.clone()).handler(ship)).await;
    // Let the subscriptions' interest reach every route.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let publisher = tracing_publisher(&n0, "traces.broker");
    within("request", publisher.request("orders.eu", "{}")).await.unwrap();

    // n0 (first), and n1 at least (the subscriber); the stream leader's too.
    recorder
        .wait_for(|spans| {
            let hops = servers(spans);
            hops.len() >= 2
                && hops.iter().any(|s| !event_text(s, "deliver", "messaging.nats.subscription").is_empty())
        })
        .await;
    // Late reports (the stream's followers) settle.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let spans = recorder.spans();
    let hops = servers(&spans);
    let request = spans.iter().find(|s| s.name == "request orders.eu").unwrap();
    assert!(hops.len() >= 2, "{hops:#?}");
    let first: Vec<&SpanData> =
        hops.iter().filter(|s| attribute(s, "messaging.nats.hop").is_none()).collect();
    assert_eq!(first.len(), 1, "{hops:#?}");
    assert_eq!(text(first[0], "messaging.nats.server.name"), "n0");
    assert_eq!(first[0].parent_span_id, request.span_context.span_id());
    assert_eq!(
        text(first[0], "messaging.nats.server.cluster"),
        text(&hops[0], "messaging.nats.server.cluster")
    );

    // Every other server is the child of the server that forwarded to it, whose
    // `forward` event names its hop, and starts after it.
    for hop in hops.iter().filter(|s| attribute(s, "messaging.nats.hop").is_some()) {
        let id = text(hop, "messaging.nats.hop");
        let forwarder = hops
            .iter()
            .find(|s| s.span_context.span_id() == hop.parent_span_id)
            .unwrap_or_else(|| panic!("hop {id} has a server span as parent: {hops:#?}"));
        assert!(event_text(forwarder, "forward", "messaging.nats.hop").contains(&id), "{forwarder:#?}");
        assert_eq!(text(hop, "messaging.nats.ingress.kind"), "route");
        assert!(hop.start_time >= forwarder.start_time, "{hop:#?}");
    }
    let delivering = hops
        .iter()
        .find(|s| event_text(s, "deliver", "messaging.nats.subscription") == ["orders.*"])
        .expect("a server delivered to the subscriber");
    assert_eq!(text(delivering, "messaging.nats.server.name"), "n1");
    assert!(
        hops.iter()
            .any(|s| event_text(s, "jetstream store", "messaging.nats.jetstream.stream") == ["ORDERS"]),
        "{hops:#?}"
    );
    assert_ne!(first[0].span_context.span_id(), SpanId::INVALID);
    running.stop().await.unwrap();
    collecting.stop().await;
}

#[tokio::test]
async fn a_subject_mapping_shows_the_subject_before_and_after() {
    let recorder = SpanRecorder::install();
    let server = NatsServer::with_config(r#"mappings { "legacy.orders": "orders.eu" }"#).unwrap();
    let client = server.connect().await.unwrap();
    let collecting = Collector::new(client.clone(), "traces.broker").start().await.unwrap();
    let running = spawn(NatsService::new(client.clone()).handler(ship)).await;

    within("request", tracing_publisher(&client, "traces.broker").request("legacy.orders", "{}"))
        .await
        .unwrap();
    let spans = recorder.wait_for(|spans| !servers(spans).is_empty()).await;
    let hop = &servers(&spans)[0];
    assert_eq!(text(hop, "messaging.destination.name"), "legacy.orders");
    assert_eq!(text(hop, "messaging.nats.destination.mapped"), "orders.eu");
    assert_eq!(event_text(hop, "subject mapping", "messaging.destination.name"), ["orders.eu"]);
    assert_eq!(event_text(hop, "deliver", "messaging.nats.subscription"), ["orders.*"]);
    running.stop().await.unwrap();
    collecting.stop().await;
}

#[tokio::test]
async fn a_denied_publish_marks_the_server_span_failed() {
    let recorder = SpanRecorder::install();
    let server = NatsServer::with_config(
        r#"authorization { users: [
            { user: app, password: app, permissions: { publish: { deny: ["admin.>"] } } }
        ] }"#,
    )
    .unwrap();
    let client = async_nats::ConnectOptions::with_user_and_password("app".into(), "app".into())
        .connect(server.url())
        .await
        .unwrap();
    let collecting = Collector::new(client.clone(), "traces.broker").start().await.unwrap();

    tracing_publisher(&client, "traces.broker").publish("admin.reset", "now").await.unwrap();
    let spans = recorder.wait_for(|spans| !servers(spans).is_empty()).await;
    let hop = &servers(&spans)[0];
    let send = spans.iter().find(|s| s.name == "send admin.reset").unwrap();
    assert_eq!(hop.parent_span_id, send.span_context.span_id());
    match &hop.status {
        Status::Error { description } => assert!(description.contains("admin.reset"), "{description}"),
        other => panic!("the denied publish marks the span: {other:?}"),
    }
    assert_eq!(text(hop, "messaging.destination.name"), "admin.reset");
    collecting.stop().await;
}

#[tokio::test]
async fn account_level_tracing_needs_only_a_sampled_traceparent() {
    let recorder = SpanRecorder::install();
    let server = NatsServer::with_config(
        r#"accounts { APP {
            users: [ { user: app, password: app } ]
            msg_trace { dest: "traces.account", sampling: 100 }
        } }"#,
    )
    .unwrap();
    let client = async_nats::ConnectOptions::with_user_and_password("app".into(), "app".into())
        .connect(server.url())
        .await
        .unwrap();
    let collecting = Collector::new(client.clone(), "traces.account").start().await.unwrap();
    let running = spawn(NatsService::new(client.clone()).handler(ship)).await;

    // No broker tracing on the publisher: the account asks.
    let reply = within("request", Publisher::new(client.clone()).request("orders.eu", "{}")).await.unwrap();
    assert_eq!(reply.payload, "", "no Nats-Trace-Dest header");
    let spans = recorder.wait_for(|spans| !servers(spans).is_empty()).await;
    let hop = &servers(&spans)[0];
    let request = spans.iter().find(|s| s.name == "request orders.eu").unwrap();
    assert_eq!(hop.parent_span_id, request.span_context.span_id());
    assert_eq!(text(hop, "messaging.nats.account"), "APP");
    running.stop().await.unwrap();
    collecting.stop().await;
}

#[tokio::test]
async fn a_dry_run_says_where_a_message_would_go_without_delivering_it() {
    let h = start().await;
    orders_stream(&h.client, 1).await;
    let running = spawn(NatsService::new(h.client.clone()).handler(ship)).await;

    let route =
        dry_run(&h.client, "orders.eu", HeaderMap::new(), "{}".into(), DEFAULT_DRY_RUN_WAIT).await.unwrap();
    assert!(route.is_complete());
    let deliveries = route.deliveries();
    assert_eq!(deliveries.len(), 1, "{route:#?}");
    assert_eq!(deliveries[0].subscription, "orders.*");
    assert_eq!(deliveries[0].queue.as_deref(), Some("shipping"));
    assert_eq!(route.streams(), ["ORDERS"]);
    assert!(route.errors().is_empty());

    let spans = h.recorder.wait_for(|spans| !servers(spans).is_empty()).await;
    let dry = spans.iter().find(|s| s.name == "dry_run orders.eu").expect("the dry run's span");
    assert_eq!(servers(&spans)[0].parent_span_id, dry.span_context.span_id());
    // Nothing was delivered or stored.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(h.recorder.spans().iter().all(|s| !s.name.starts_with("process")), "the handler ran");
    let mut orders = jetstream::new(h.client.clone()).get_stream("ORDERS").await.unwrap();
    assert_eq!(orders.info().await.unwrap().state.messages, 0);

    // A subject nobody listens to: an honest empty route.
    let nowhere =
        dry_run(&h.client, "nowhere", HeaderMap::new(), "".into(), DEFAULT_DRY_RUN_WAIT).await.unwrap();
    assert!(nowhere.deliveries().is_empty() && nowhere.streams().is_empty());
    let invalid = dry_run(&h.client, "orders.*", HeaderMap::new(), "".into(), DEFAULT_DRY_RUN_WAIT).await;
    assert_eq!(invalid.unwrap_err().kind(), nats_otel_runtime::BrokerTraceErrorKind::InvalidSubject);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn hostile_reports_are_counted_and_the_collector_keeps_recording() {
    let h = start().await;
    let collecting = Collector::new(h.client.clone(), "traces.broker")
        .hop_wait(Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let report = |hop: &str, server: &str| {
        let hop = if hop.is_empty() { String::new() } else { format!(r#","Nats-Trace-Hop":["{hop}"]"#) };
        format!(
            r#"{{"server":{{"name":"{server}","id":"X","ver":"2.15.1"}},
                "request":{{"header":{{"traceparent":["{traceparent}"]{hop}}},"msgsize":10}},
                "events":[{{"type":"in","ts":"2026-11-28T02:18:57.000000001Z","kind":1,"acc":"$G","subj":"a"}}]}}"#
        )
    };
    let mut hostile: Vec<Vec<u8>> = vec![
        b"\xff\xfe not json".to_vec(),
        b"{}".to_vec(),
        br#"{"server":{},"events":[{"type":"in","ts":"yesterday","kind":0}]}"#.to_vec(),
        vec![b'['; 512 * 1024],
        // Valid, but joins no trace.
        br#"{"server":{"name":"x"},"request":{"header":{"traceparent":["00-zz-zz-01"]}}}"#.to_vec(),
    ];
    // A forwarded server's report whose forwarder's never comes.
    hostile.push(report("3.1", "orphan").into_bytes());
    for payload in hostile {
        h.client.publish("traces.broker", payload.into()).await.unwrap();
    }
    // Still recording: a forwarded report before its forwarder's is nested
    // when the forwarder's arrives.
    h.client.publish("traces.broker", report("1", "second").into_bytes().into()).await.unwrap();
    h.client.publish("traces.broker", report("", "first").into_bytes().into()).await.unwrap();
    h.client.flush().await.unwrap();

    let spans = h.recorder.wait_for(|spans| servers(spans).len() == 3).await;
    let by_name =
        |name: &str| servers(&spans).into_iter().find(|s| s.name == format!("nats-server {name}")).unwrap();
    let (first, second, orphan) = (by_name("first"), by_name("second"), by_name("orphan"));
    assert_eq!(second.parent_span_id, first.span_context.span_id(), "nested once its forwarder came");
    let publisher_span = SpanId::from_hex("00f067aa0ba902b7").unwrap();
    assert_eq!(first.parent_span_id, publisher_span);
    assert_eq!(
        orphan.parent_span_id,
        first.span_context.span_id(),
        "after the hop wait, under its nearest recorded ancestor"
    );
    let counts = collecting.stop().await;
    assert_eq!(
        (counts.reports, counts.malformed, counts.untraceable, counts.spans),
        (8, 4, 1, 3),
        "{counts:?}"
    );
}

#[tokio::test]
async fn a_dry_run_nobody_reports_on_fails_saying_what_it_needs() {
    let _recorder = SpanRecorder::install();
    let server = NatsServer::with_config(
        r#"authorization { users: [
            { user: blind, password: blind, permissions: { subscribe: { deny: ["_INBOX.>"] } } }
        ] }"#,
    )
    .unwrap();
    let client = async_nats::ConnectOptions::with_user_and_password("blind".into(), "blind".into())
        .connect(server.url())
        .await
        .unwrap();
    let wait = Duration::from_millis(300);
    let error = dry_run(&client, "orders.eu", HeaderMap::new(), "{}".into(), wait).await.unwrap_err();
    assert_eq!(error.kind(), nats_otel_runtime::BrokerTraceErrorKind::NoReport);
    assert!(error.to_string().contains("2.11") && error.to_string().contains("inboxes"), "{error}");
}
