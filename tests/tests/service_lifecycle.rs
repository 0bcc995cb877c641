//! Service lifecycle: queue groups, concurrency, graceful shutdown, state, and
//! subscriptions that cannot be created.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use nats_otel_runtime::prelude::*;
use nats_otel_runtime::{JetStreamConsumer, ServeErrorKind, Subscription};
use tokio::sync::{Mutex, Semaphore};

/// Which service instance handled which message id.
#[derive(Clone, Default)]
struct Seen {
    instance: &'static str,
    ids: Arc<Mutex<HashMap<u64, Vec<&'static str>>>>,
}

#[nats_subscribe("work.items", queue = "workers")]
async fn work(Json(id): Json<u64>, State(seen): State<Seen>) -> Json<&'static str> {
    seen.ids.lock().await.entry(id).or_default().push(seen.instance);
    Json(seen.instance)
}

#[tokio::test]
async fn a_queue_group_across_two_services_handles_each_message_once() {
    let h = start().await;
    let ids = Arc::new(Mutex::new(HashMap::new()));
    let a = spawn(
        NatsService::new(h.server.connect().await.unwrap())
            .state(Seen { instance: "a", ids: ids.clone() })
            .handler(work),
    )
    .await;
    let b = spawn(
        NatsService::new(h.server.connect().await.unwrap())
            .state(Seen { instance: "b", ids: ids.clone() })
            .handler(work),
    )
    .await;

    const N: u64 = 400;
    let replies = futures_util::future::join_all(
        (0..N).map(|id| h.client.request("work.items", serde_json::to_vec(&id).unwrap().into())),
    )
    .await;
    assert!(replies.iter().all(Result::is_ok), "every request answered");

    let ids = ids.lock().await;
    assert_eq!(ids.len() as u64, N, "every message handled");
    assert!(ids.values().all(|who| who.len() == 1), "no message handled twice");
    let by_a = ids.values().filter(|who| who[0] == "a").count();
    assert!(by_a > 0 && by_a < N as usize, "both members take work: a handled {by_a} of {N}");
    drop(ids);

    // One member stops: the group keeps answering.
    a.stop().await.unwrap();
    let reply = h.client.request("work.items", "1000".into()).await.unwrap();
    assert_eq!(&reply.payload[..], b"\"b\"");
    b.stop().await.unwrap();
}

/// Handlers that block until the test releases them, counting how many run at once.
#[derive(Clone)]
struct Gate {
    release: Arc<Semaphore>,
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
}

#[nats_subscribe("slow.jobs", concurrency = 4)]
async fn slow(State(gate): State<Gate>, Json(n): Json<u64>) -> Json<u64> {
    let now = gate.running.fetch_add(1, Ordering::SeqCst) + 1;
    gate.peak.fetch_max(now, Ordering::SeqCst);
    let _permit = gate.release.acquire().await.unwrap();
    gate.running.fetch_sub(1, Ordering::SeqCst);
    gate.done.fetch_add(1, Ordering::SeqCst);
    Json(n * 2)
}

#[tokio::test]
async fn shutdown_under_load_finishes_in_flight_requests_and_respects_concurrency() {
    let h = start().await;
    let gate = Gate {
        release: Arc::new(Semaphore::new(0)),
        running: Arc::default(),
        peak: Arc::default(),
        done: Arc::default(),
    };
    let service_client = h.server.connect().await.unwrap();
    let running = spawn(NatsService::new(service_client).state(gate.clone()).handler(slow)).await;

    // 40 requests in flight; the handler lets none finish yet.
    const N: u64 = 40;
    let requester = h.client.clone();
    let requests = tokio::spawn(async move {
        futures_util::future::join_all((0..N).map(|n| {
            let requester = requester.clone();
            async move {
                let reply = requester.request("slow.jobs", serde_json::to_vec(&n).unwrap().into()).await?;
                Ok::<_, async_nats::RequestError>(serde_json::from_slice::<u64>(&reply.payload).unwrap())
            }
        }))
        .await
    });
    // Wait until the concurrency limit is reached: 4 handlers blocked in the gate.
    within("4 handlers running", async {
        while gate.running.load(Ordering::SeqCst) < 4 {
            tokio::task::yield_now().await;
        }
    })
    .await;

    // Stop while 4 run and the rest are queued in the subscription; then release.
    let stopping = tokio::spawn(running.stop());
    tokio::task::yield_now().await;
    gate.release.add_permits(N as usize);

    stopping.await.unwrap().unwrap();
    let answers = within("all replies", requests).await.unwrap();
    let mut doubled: Vec<u64> = answers.into_iter().map(|r| r.expect("no request lost")).collect();
    doubled.sort_unstable();
    assert_eq!(doubled, (0..N).map(|n| n * 2).collect::<Vec<_>>());
    assert_eq!(gate.done.load(Ordering::SeqCst), N as usize);
    assert_eq!(gate.peak.load(Ordering::SeqCst), 4, "never more than `concurrency` handlers at once");
}

async fn plain(_body: Bytes) {}

#[tokio::test]
async fn an_invalid_subject_at_run_time_names_the_handler_and_subject() {
    let h = start().await;
    for (subject, queue) in
        [("orders..eu", None), ("orders.>.eu", None), ("ord*", None), ("ok", Some("bad queue"))]
    {
        let mut subscription = Subscription::new(subject).name("billing::plain");
        if let Some(queue) = queue {
            subscription = subscription.queue(queue);
        }
        let err = refused(NatsService::new(h.client.clone()).subscribe_with(subscription, plain)).await;
        assert_eq!(err.kind(), ServeErrorKind::InvalidSubject, "{subject}");
        let text = err.to_string();
        assert!(text.contains("billing::plain") && text.contains(subject), "{text}");
    }
}

/// Why `service` would not start.
async fn refused<S: Send + Sync + 'static>(service: NatsService<S>) -> nats_otel_runtime::ServeError {
    service.run_until(std::future::pending::<()>()).await.expect_err("the service refuses to start")
}

/// Options that break a rule are told apart from bad subjects, on every path
/// that checks them: a core subscription, a consumer, and the contract. The
/// consumer is refused before the server has made it.
#[tokio::test]
async fn invalid_options_are_not_reported_as_invalid_subjects() {
    let h = start().await;
    let none_at_once = Subscription::new("orders.created").name("billing::plain").concurrency(0);
    let err = refused(NatsService::new(h.client.clone()).subscribe_with(none_at_once.clone(), plain)).await;
    assert_eq!(err.kind(), ServeErrorKind::InvalidOptions, "{err:#}");
    assert!(format!("{err:#}").contains("concurrency"), "{err:#}");
    let contract = NatsService::new(h.client.clone())
        .name("billing")
        .version("1.0.0")
        .subscribe_with(none_at_once, plain)
        .asyncapi();
    assert_eq!(contract.unwrap_err().kind(), ServeErrorKind::InvalidOptions);

    let js = async_nats::jetstream::new(h.client.clone());
    let mut stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "OPTIONS".into(),
            subjects: vec!["options.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let over_pending = JetStreamConsumer::new("OPTIONS", "over").concurrency(10).max_ack_pending(5);
    let err = refused(NatsService::new(h.client.clone()).consume(over_pending, plain_js)).await;
    assert_eq!(err.kind(), ServeErrorKind::InvalidOptions, "{err:#}");
    let bad_filter = JetStreamConsumer::new("OPTIONS", "filter").filter("options..x");
    let err = refused(NatsService::new(h.client.clone()).consume(bad_filter, plain_js)).await;
    assert_eq!(err.kind(), ServeErrorKind::InvalidSubject, "{err:#}");
    assert_eq!(stream.info().await.unwrap().state.consumer_count, 0, "no consumer was made");
}

async fn plain_js(_body: Bytes) {}

#[tokio::test]
async fn an_undecorated_async_fn_can_be_subscribed_without_macros() {
    let h = start().await;
    async fn double(Json(n): Json<i64>) -> Json<i64> {
        Json(n * 2)
    }
    let running = spawn(NatsService::new(h.client.clone()).subscribe("math.double", double)).await;
    let reply = h.client.request("math.double", "21".into()).await.unwrap();
    assert_eq!(&reply.payload[..], b"42");
    let spans = h.recorder.wait_for(|s| count(s, "process math.double") == 1).await;
    assert!(attr(one(&spans, "process math.double"), "messaging.destination.template").is_none());
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_closed_client_ends_run_until_with_an_error() {
    let h = start().await;
    let client = h.server.connect().await.unwrap();
    let running = spawn(NatsService::new(client.clone()).handler(work_or_fail)).await;
    client.drain().await.unwrap();
    let err = within("service ends", running.join()).await.unwrap_err();
    // The client's connection task has ended (as when it dies: hostile_headers.rs).
    assert_eq!(err.kind(), ServeErrorKind::ConnectionClosed, "{err}");
    assert!(err.to_string().contains("work.other"), "{err}");
}

#[nats_subscribe("work.other")]
async fn work_or_fail(_body: Bytes) {}

#[nats_subscribe("forbidden.orders", queue = "billing")]
async fn forbidden(_body: Bytes) {}

#[nats_subscribe("allowed.orders")]
async fn allowed(_body: Bytes) {}

#[tokio::test]
async fn a_permissions_violation_on_subscribe_names_the_handler_and_subject() {
    let server = nats_otel_runtime::testing::NatsServer::with_config(
        r#"
        authorization {
          users = [
            { user: "svc", password: "pw", permissions: { subscribe: { allow: ["allowed.>", "_INBOX.>"] }, publish: { allow: [">"] } } }
          ]
        }
        "#,
    )
    .unwrap();
    let events = nats_otel_runtime::ClientEvents::new();
    let client = events
        .attach(async_nats::ConnectOptions::with_user_and_password("svc".into(), "pw".into()))
        .connect(server.url())
        .await
        .unwrap();

    let err = within(
        "run_until fails",
        NatsService::new(client)
            .events(&events)
            .handler(allowed)
            .handler(forbidden)
            .run_until(std::future::pending::<()>()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ServeErrorKind::PermissionDenied);
    let text = err.to_string();
    assert!(text.contains("forbidden") && text.contains("forbidden.orders"), "{text}");
    assert!(!text.contains("allowed.orders"), "{text}");
}

#[nats_subscribe("stuck.jobs")]
async fn stuck(State(running): State<Arc<tokio::sync::Notify>>) {
    running.notify_one();
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn the_shutdown_timeout_bounds_the_wait_for_in_flight_handlers() {
    let h = start().await;
    let handler_running = Arc::new(tokio::sync::Notify::new());
    let running = spawn(
        NatsService::new(h.client.clone())
            .state(handler_running.clone())
            .handler(stuck)
            .shutdown_timeout(Duration::from_millis(200)),
    )
    .await;
    h.client.publish("stuck.jobs", "".into()).await.unwrap();
    within("handler starts", handler_running.notified()).await;
    let err = within("shutdown returns", running.stop()).await.unwrap_err();
    assert_eq!(err.kind(), ServeErrorKind::ShutdownTimeout);
}

#[nats_subscribe("headers.echo")]
async fn header_names(headers: HeaderMap) -> Json<Vec<String>> {
    let mut names: Vec<String> = headers.iter().map(|(name, _)| name.to_string()).collect();
    names.sort();
    Json(names)
}

#[tokio::test]
async fn the_publisher_keeps_caller_headers_and_adds_the_trace_context() {
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(header_names)).await;
    let mut headers = HeaderMap::new();
    headers.insert("X-Tenant", "acme");
    let reply =
        Publisher::new(h.client.clone()).request_with_headers("headers.echo", headers, "").await.unwrap();
    let names: Vec<String> = serde_json::from_slice(&reply.payload).unwrap();
    assert!(names.contains(&"X-Tenant".to_owned()), "{names:?}");
    assert!(names.contains(&"traceparent".to_owned()), "{names:?}");
    running.stop().await.unwrap();
}
