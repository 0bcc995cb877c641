//! Pins how async-nats 0.51 handles the header blocks it receives (`HMSG`).
//!
//! These tests document UPSTREAM behaviour, not nats-otel's: no nats-otel code
//! runs here. A plain async-nats client subscribes; the testing kit's
//! [`RawPublisher`] sends header bytes that nats-server forwards verbatim. They
//! pass on async-nats 0.51 as it is, and `docs/upstream/async-nats-header-parsing.md`
//! (the upstream report) cites them. When one fails after an async-nats upgrade,
//! upstream has changed: update the report, its table, and nats-otel's detection
//! (`nats-otel-runtime/src/connection.rs`).
//!
//! Each block is classified by the first thing the client shows, awaited with a
//! bound (no sleeps, no timing assertions):
//! - delivered: the subscriber yields the message;
//! - drops the connection: a `Disconnected` event; the message is lost, the client
//!   reconnects (`Connected`) and works again;
//! - kills the connection task: the subscription ends (`None`) with no event;
//!   the client goes on reporting `Connected` while every command fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::{Client, Event, Message, Subscriber};
use futures_util::StreamExt;
use nats_otel_runtime::testing::{NatsServer, RawPublisher};
use tokio::sync::mpsc::UnboundedReceiver;

const SUBJECT: &str = "upstream.hostile";
/// Bound on every wait: generous, as nothing here is about speed.
const WAIT: Duration = Duration::from_secs(10);

/// A subscribed client and what it reports.
struct Watched {
    client: Client,
    subscriber: Subscriber,
    events: UnboundedReceiver<Event>,
}

/// Connects a client that records its events, subscribed to [`SUBJECT`], and
/// returns once the server routes that subject to it (a message round trip).
async fn watched(server: &NatsServer) -> Watched {
    let (tx, events) = tokio::sync::mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::new()
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(event);
            }
        })
        .connect(server.url())
        .await
        .unwrap();
    let mut subscriber = client.subscribe(SUBJECT).await.unwrap();
    client.publish(SUBJECT, "ready".into()).await.unwrap();
    let ready = tokio::time::timeout(WAIT, subscriber.next()).await.unwrap().unwrap();
    assert_eq!(&ready.payload[..], b"ready");
    Watched { client, subscriber, events }
}

/// What the client showed first after `block` was published to it.
#[derive(Debug)]
enum First {
    Delivered(Box<Message>),
    Disconnected,
    SubscriptionEnded,
}

/// Publishes `block` (payload `hostile`) raw, and waits for the first sign.
async fn send(server: &NatsServer, watched: &mut Watched, block: &[u8]) -> First {
    let mut raw = RawPublisher::connect(server).await.unwrap();
    raw.publish(SUBJECT, block, b"hostile").await.unwrap();
    raw.flush().await.expect("nats-server accepts the block and forwards it as it is");
    let Watched { subscriber, events, .. } = watched;
    let disconnected = async {
        while let Some(event) = events.recv().await {
            if matches!(event, Event::Disconnected) {
                return;
            }
        }
        std::future::pending::<()>().await
    };
    let first = async {
        tokio::select! {
            message = subscriber.next() => match message {
                Some(message) => First::Delivered(Box::new(message)),
                None => First::SubscriptionEnded,
            },
            () = disconnected => First::Disconnected,
        }
    };
    tokio::time::timeout(WAIT, first).await.expect("the client shows something")
}

async fn delivered(server: &NatsServer, block: &[u8]) -> Message {
    let mut watched = watched(server).await;
    match send(server, &mut watched, block).await {
        First::Delivered(message) => {
            assert_eq!(&message.payload[..], b"hostile");
            *message
        }
        other => panic!("{:?}: expected delivery, got {other:?}", String::from_utf8_lossy(block)),
    }
}

/// The header blocks async-nats 0.51 treats as a broken connection: its parser
/// (`Connection::try_read_op`, HMSG branch) returns an `io::Error`, the
/// connection handler drops the socket and reconnects. Every message in flight
/// on that connection is lost with the bad one (here only the bad one was).
const DROPS_THE_CONNECTION: &[(&str, &[u8])] = &[
    ("value not UTF-8", b"NATS/1.0\r\nX: \xff\r\n\r\n"),
    ("name not UTF-8", b"NATS/1.0\r\n\xff: 1\r\n\r\n"),
    ("line without ':'", b"NATS/1.0\r\nno colon here\r\n\r\n"),
    ("name with a space", b"NATS/1.0\r\nX Y: 1\r\n\r\n"),
    ("name with a control character", b"NATS/1.0\r\nX\x01Y: 1\r\n\r\n"),
    ("name with a lone CR", b"NATS/1.0\r\nX\rY: 1\r\n\r\n"),
    ("name not ASCII (valid UTF-8)", "NATS/1.0\r\n\u{c4}: 1\r\n\r\n".as_bytes()),
    ("version NATS/2.0", b"NATS/2.0\r\nX: 1\r\n\r\n"),
    ("version HTTP/1.0", b"HTTP/1.0\r\nX: 1\r\n\r\n"),
    ("empty version line", b"\r\nX: 1\r\n\r\n"),
    ("status not a number", b"NATS/1.0 abc\r\n\r\n"),
    ("status of five digits", b"NATS/1.0 99999\r\n\r\n"),
    ("lone CR in the version line", b"NATS/1.0\rX: 1\r\n\r\n"),
    ("lone LF, then a line without ':'", b"NATS/1.0\r\nX: a\nb\r\n\r\n"),
];

#[tokio::test]
async fn upstream_pins_header_blocks_that_drop_the_connection_and_lose_the_message() {
    let server = NatsServer::start().unwrap();
    for (case, block) in DROPS_THE_CONNECTION {
        let mut watched = watched(&server).await;
        let first = send(&server, &mut watched, block).await;
        assert!(matches!(first, First::Disconnected), "{case}: {first:?}");
        // It reconnects on its own and works again; the bad message is gone.
        let reconnected = async {
            while let Some(event) = watched.events.recv().await {
                if matches!(event, Event::Connected) {
                    return;
                }
            }
            panic!("{case}: the event stream ended before a reconnection");
        };
        tokio::time::timeout(WAIT, reconnected).await.unwrap_or_else(|_| panic!("{case}: no reconnection"));
        assert_eq!(watched.client.connection_state(), State::Connected, "{case}");
        watched.client.publish(SUBJECT, "after".into()).await.unwrap();
        let next = tokio::time::timeout(WAIT, watched.subscriber.next()).await.unwrap().unwrap();
        assert_eq!(&next.payload[..], b"after", "{case}: the hostile message is never delivered");
    }
}

/// Panic messages seen by this test binary (the hook still prints them).
fn panics() -> &'static Mutex<Vec<String>> {
    static PANICS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    PANICS.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| info.payload().downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            let at = info.location().map(|l| l.file().to_owned()).unwrap_or_default();
            if let Some(panics) = PANICS.get() {
                panics
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(format!("{at}: {message}"));
            }
            previous(info);
        }));
        Mutex::new(Vec::new())
    })
}

/// A lone CR inside a header value (or a continuation line) passes the parser,
/// which splits lines on LF only, and reaches `HeaderValue::from(String)`
/// (through `IntoHeaderValue`), which `assert!`s there is no CR or LF. The
/// assertion panics inside the connection task, which dies: its command
/// channel and every subscription's channel close, no event is sent, and the
/// state watch keeps its last value, `Connected`. Nothing reconnects.
const KILLS_THE_CONNECTION_TASK: &[(&str, &[u8])] = &[
    ("lone CR inside a value", b"NATS/1.0\r\nX: a\rb\r\n\r\n"),
    ("lone CR in a continuation line", b"NATS/1.0\r\nX: a\r\n \rb\r\n\r\n"),
];

#[tokio::test]
async fn upstream_pins_a_lone_cr_in_a_value_kills_the_connection_task_while_it_reports_connected() {
    let server = NatsServer::start().unwrap();
    let panics = panics();
    for (case, block) in KILLS_THE_CONNECTION_TASK {
        let seen_before = panics.lock().unwrap().len();
        let mut watched = watched(&server).await;
        let first = send(&server, &mut watched, block).await;
        assert!(matches!(first, First::SubscriptionEnded), "{case}: {first:?}");

        let client = &watched.client;
        // The false state: the task is gone, the watch keeps `Connected`.
        assert_eq!(client.connection_state(), State::Connected, "{case}");
        // Every command fails at once: the command channel's receiver is gone.
        // (The probe nats-otel uses: `flush` is a command, answered by the task.)
        let flush = tokio::time::timeout(WAIT, client.flush()).await.expect("flush fails, it does not hang");
        let flush = flush.expect_err("flush fails");
        assert_eq!(flush.kind(), async_nats::client::FlushErrorKind::SendError, "{case}: {flush}");
        assert!(client.publish(SUBJECT, "after".into()).await.is_err(), "{case}: publish fails");
        assert!(client.subscribe("upstream.other").await.is_err(), "{case}: subscribe fails");
        assert!(client.force_reconnect().await.is_err(), "{case}: it cannot even be told to reconnect");
        let request = tokio::time::timeout(WAIT, client.request(SUBJECT, "q".into())).await;
        assert!(matches!(request, Ok(Err(_))), "{case}: a request fails: {request:?}");
        assert_eq!(client.connection_state(), State::Connected, "{case}: still");
        // No event: neither `Disconnected` nor `Closed`; the event channel just ends.
        let mut events = Vec::new();
        let ended = tokio::time::timeout(WAIT, async {
            while let Some(event) = watched.events.recv().await {
                events.push(event);
            }
        })
        .await;
        assert!(ended.is_ok(), "{case}: the event channel closes");
        assert!(
            !events.iter().any(|e| matches!(e, Event::Disconnected | Event::Closed)),
            "{case}: {events:?}"
        );
        // The cause: the assertion in async-nats' header.rs.
        let panics = panics.lock().unwrap();
        assert!(
            panics[seen_before..]
                .iter()
                .any(|p| p.contains("header.rs") && p.contains("invalid header value: cannot contain")),
            "{case}: {panics:?}"
        );
    }
}

#[tokio::test]
async fn upstream_pins_malformed_blocks_it_delivers_some_of_them_altered() {
    let server = NatsServer::start().unwrap();
    let header =
        |m: &Message, name: &str| m.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned());
    let count = |m: &Message| m.headers.as_ref().map_or(0, |h| h.iter().count());

    // A lone LF splits a value: a second header is injected.
    let m = delivered(&server, b"NATS/1.0\r\nX: a\nY: b\r\n\r\n").await;
    assert_eq!((header(&m, "X").as_deref(), header(&m, "Y").as_deref()), (Some("a"), Some("b")));
    // A lone LF followed by whitespace is a continuation: the lines are joined.
    let m = delivered(&server, b"NATS/1.0\r\nX: a\n b\r\n\r\n").await;
    assert_eq!(header(&m, "X").as_deref(), Some("a b"));
    // A CR just before the line's CRLF is trimmed with the value's whitespace.
    let m = delivered(&server, b"NATS/1.0\r\nX: a\r\r\n\r\n").await;
    assert_eq!(header(&m, "X").as_deref(), Some("a"));
    // An empty name is accepted.
    let m = delivered(&server, b"NATS/1.0\r\n: v\r\n\r\n").await;
    assert_eq!(header(&m, "").as_deref(), Some("v"));
    // A NUL in a value is kept.
    let m = delivered(&server, b"NATS/1.0\r\nX: a\0b\r\n\r\n").await;
    assert_eq!(header(&m, "X").as_deref(), Some("a\0b"));
    // A block that does not end with the blank line is read as it is.
    let m = delivered(&server, b"NATS/1.0\r\nX: 1").await;
    assert_eq!(header(&m, "X").as_deref(), Some("1"));
    let m = delivered(&server, b"NATS/1.0").await;
    assert_eq!((m.status, count(&m)), (None, 0));
    // Any publisher can set a status: a 503 reads as "no responders".
    let m = delivered(&server, b"NATS/1.0 503\r\n\r\n").await;
    assert_eq!((m.status, count(&m)), (Some(async_nats::StatusCode::NO_RESPONDERS), 0));
    // A status description is not checked (a lone CR is kept, no panic).
    let m = delivered(&server, b"NATS/1.0 503 a\rb\r\n\r\n").await;
    assert_eq!(m.description.as_deref(), Some("a\rb"));
    // A zero-length header block: nats-server sends the message without headers.
    let m = delivered(&server, b"").await;
    assert!(m.headers.is_none());
}

/// A responder answering with a forged `NATS/1.0 503` status makes the requester
/// see "no responders", although a responder answered.
#[tokio::test]
async fn upstream_pins_a_forged_503_reply_reads_as_no_responders() {
    let server = NatsServer::start().unwrap();
    let responder = server.connect().await.unwrap();
    let mut requests = responder.subscribe("upstream.ask").await.unwrap();
    responder.flush().await.unwrap();
    let mut raw = RawPublisher::connect(&server).await.unwrap();
    let requester = server.connect().await.unwrap();
    // The subscription is registered once a request to the subject gets through.
    let answering = tokio::spawn(async move {
        let request = requests.next().await.unwrap();
        let reply_to = request.reply.unwrap();
        raw.publish(&reply_to, b"NATS/1.0 503\r\n\r\n", b"").await.unwrap();
        raw.flush().await.unwrap();
    });
    let reply = tokio::time::timeout(WAIT, requester.request("upstream.ask", "q".into())).await.unwrap();
    let error = reply.expect_err("the forged status fails the request");
    assert_eq!(error.kind(), async_nats::RequestErrorKind::NoResponders);
    answering.await.unwrap();
}

/// The upstream report's minimal reproduction, without nats-server: a fake
/// server that answers the handshake, then sends one `HMSG` whose header value
/// holds a lone CR, then a valid `MSG`. The report's test asserts what should
/// happen (the valid message arrives, the client works); this one pins what
/// async-nats 0.51 does: the subscription ends and the client is dead.
#[tokio::test]
async fn upstream_pins_the_reports_minimal_reproduction_against_a_fake_server() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        let info =
            br#"INFO {"server_id":"fake","version":"2.10.0","headers":true,"max_payload":1048576,"proto":1}"#;
        write.write_all(info).await.unwrap();
        write.write_all(b"\r\n").await.unwrap();
        let mut lines = BufReader::new(read).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("PING") {
                write.write_all(b"PONG\r\n").await.unwrap();
            } else if let Some(sub) = line.strip_prefix("SUB ") {
                let sid = sub.split(' ').next_back().unwrap().to_owned();
                let header = b"NATS/1.0\r\nX: a\rb\r\n\r\n";
                let line = format!("HMSG test {sid} {} {}\r\n", header.len(), header.len() + 3);
                write.write_all(line.as_bytes()).await.unwrap();
                write.write_all(header).await.unwrap();
                write.write_all(b"bad\r\n").await.unwrap();
                write.write_all(format!("MSG test {sid} 4\r\ngood\r\n").as_bytes()).await.unwrap();
            }
        }
    });
    let client = async_nats::connect(address.to_string()).await.unwrap();
    let mut subscriber = client.subscribe("test").await.unwrap();
    let next =
        tokio::time::timeout(WAIT, subscriber.next()).await.expect("the subscription ends, it does not hang");
    assert!(next.is_none(), "0.51: the subscription ends instead of delivering `good`: {next:?}");
    let flush = tokio::time::timeout(WAIT, client.flush()).await.unwrap();
    assert_eq!(flush.unwrap_err().kind(), async_nats::client::FlushErrorKind::SendError);
    assert_eq!(client.connection_state(), State::Connected);
}
