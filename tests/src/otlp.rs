//! An OTLP receiver: what an exporter sends, read off the wire with the OTLP
//! protobuf definitions (`opentelemetry-proto`).
//!
//! One port serves all three OTLP protocols: gRPC (the generated collector
//! services, over HTTP/2), and HTTP `POST /v1/traces` and `/v1/metrics` with
//! protobuf or JSON bodies. In plain text, or TLS with an optional demand for a
//! client certificate. It records each export with the protocol it came by,
//! and each refused TLS handshake; or, started with
//! [`start_counting`](OtlpReceiver::start_counting), decodes the traces exports
//! as fully but only counts their spans.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tonic::codegen::Service as _;

use crate::tls::Certificates;

/// How an export arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

/// One export request, with how it came.
#[derive(Debug, Clone)]
pub struct Export<T> {
    pub wire: Wire,
    /// Whether it came over TLS.
    pub tls: bool,
    pub request: T,
}

/// Everything received so far.
#[derive(Debug, Clone, Default)]
pub struct Received {
    pub traces: Vec<Export<ExportTraceServiceRequest>>,
    pub metrics: Vec<Export<ExportMetricsServiceRequest>>,
    /// TLS handshakes the receiver refused, and why.
    pub refused: Vec<String>,
}

/// A span with its resource's attributes.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub resource: Vec<KeyValue>,
    pub span: Span,
}

impl ReceivedSpan {
    /// A span attribute as text (strings as they are, other values printed).
    pub fn attribute(&self, key: &str) -> Option<String> {
        find(&self.span.attributes, key)
    }

    /// A resource attribute as text.
    pub fn resource_attribute(&self, key: &str) -> Option<String> {
        find(&self.resource, key)
    }
}

fn find(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).map(text)
}

/// An attribute value as text.
pub fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

impl Received {
    /// Every span, with its resource.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.traces
            .iter()
            .flat_map(|export| &export.request.resource_spans)
            .flat_map(|resource_spans| {
                let resource =
                    resource_spans.resource.as_ref().map(|r| r.attributes.clone()).unwrap_or_default();
                resource_spans
                    .scope_spans
                    .iter()
                    .flat_map(|scope| &scope.spans)
                    .map(move |span| ReceivedSpan { resource: resource.clone(), span: span.clone() })
            })
            .collect()
    }

    /// The names of the metrics received, with their resources' attributes.
    pub fn metrics(&self) -> Vec<(Vec<KeyValue>, opentelemetry_proto::tonic::metrics::v1::Metric)> {
        self.metrics
            .iter()
            .flat_map(|export| &export.request.resource_metrics)
            .flat_map(|resource_metrics| {
                let resource =
                    resource_metrics.resource.as_ref().map(|r| r.attributes.clone()).unwrap_or_default();
                resource_metrics
                    .scope_metrics
                    .iter()
                    .flat_map(|scope| &scope.metrics)
                    .map(move |metric| (resource.clone(), metric.clone()))
            })
            .collect()
    }
}

#[derive(Debug, Default)]
struct Shared {
    received: Mutex<Received>,
    changed: Notify,
    /// Spans in every traces export decoded, kept or not.
    spans: AtomicU64,
    /// Whether traces exports are only counted, not kept: a benchmark sends
    /// millions of spans, which kept would take gigabytes.
    counting: bool,
}

impl Shared {
    /// A decoded traces export: counted, and kept unless counting.
    fn traces(&self, export: Export<ExportTraceServiceRequest>) {
        let spans: usize = export
            .request
            .resource_spans
            .iter()
            .flat_map(|resource_spans| &resource_spans.scope_spans)
            .map(|scope| scope.spans.len())
            .sum();
        self.spans.fetch_add(spans as u64, Ordering::Relaxed);
        if self.counting {
            self.changed.notify_waiters();
        } else {
            self.record(|r| r.traces.push(export));
        }
    }

    fn lock(&self) -> MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, record: impl FnOnce(&mut Received)) {
        record(&mut self.lock());
        self.changed.notify_waiters();
    }
}

/// A running receiver; stops on drop.
#[derive(Debug)]
pub struct OtlpReceiver {
    endpoint: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the receiver demands of TLS clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Any client.
    None,
    /// A client certificate signed by the test CA.
    Required,
}

impl OtlpReceiver {
    /// A plain-text receiver on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        Self::serve(None, false).await
    }

    /// A plain-text receiver that decodes traces exports as [`start`](Self::start)'s
    /// does, but keeps only how many spans came ([`span_count`](Self::span_count)),
    /// not the requests: [`received`](Self::received) holds no traces. For
    /// benchmarks, whose millions of spans would fill the memory.
    pub async fn start_counting() -> std::io::Result<Self> {
        Self::serve(None, true).await
    }

    /// A TLS receiver presenting `certificates`' server certificate.
    pub async fn start_tls(
        certificates: &Certificates,
        client_auth: ClientAuth,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        Ok(Self::serve(Some(acceptor(certificates, client_auth)?), false).await?)
    }

    async fn serve(tls: Option<tokio_rustls::TlsAcceptor>, counting: bool) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let endpoint = format!("{scheme}://localhost:{}", address.port());
        let shared = Arc::new(Shared { counting, ..Shared::default() });
        let task = tokio::spawn(accept(listener, tls, shared.clone()));
        Ok(Self { endpoint, shared, task })
    }

    /// The endpoint for `OTEL_EXPORTER_OTLP_ENDPOINT` (`http://` or `https://`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// What has been received so far.
    pub fn received(&self) -> Received {
        self.shared.lock().clone()
    }

    /// How many spans the traces exports received so far held, whatever
    /// their protocol, kept or only counted.
    pub fn span_count(&self) -> u64 {
        self.shared.spans.load(Ordering::Relaxed)
    }

    /// Waits until `done` holds of what was received; what was received either way.
    pub async fn wait_for(
        &self,
        within: Duration,
        done: impl Fn(&Received) -> bool,
    ) -> Result<Received, Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let changed = self.shared.changed.notified();
            let received = self.received();
            if done(&received) {
                return Ok(received);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(self.received());
            }
        }
    }
}

fn acceptor(
    certificates: &Certificates,
    client_auth: ClientAuth,
) -> Result<tokio_rustls::TlsAcceptor, Box<dyn std::error::Error>> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain =
        CertificateDer::pem_file_iter(certificates.path("server.pem"))?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(certificates.path("server-key.pem"))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Required => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in CertificateDer::pem_file_iter(certificates.path("ca.pem"))? {
                roots.add(ca?)?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn accept(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>, shared: Arc<Shared>) {
    while let Ok((stream, peer)) = listener.accept().await {
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(TokioIo::new(stream), false, shared).await,
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => connection(TokioIo::new(stream), true, shared).await,
                    Err(e) => shared.record(|r| r.refused.push(format!("{peer}: {e}"))),
                },
            }
        });
    }
}

async fn connection<I>(io: TokioIo<I>, tls: bool, shared: Arc<Shared>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| handle(request, tls, shared.clone()));
    // A client closing its connection ends this one; nothing to report.
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(io, service)
        .await;
}

type Reply = Response<tonic::body::Body>;

async fn handle(request: Request<Incoming>, tls: bool, shared: Arc<Shared>) -> Result<Reply, Infallible> {
    let content_type = request
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if content_type.starts_with("application/grpc") {
        let sink = Sink { tls, shared };
        let path = request.uri().path().to_owned();
        return match path.as_str() {
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export" => {
                TraceServiceServer::new(sink).call(request).await
            }
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export" => {
                MetricsServiceServer::new(sink).call(request).await
            }
            _ => Ok(status(StatusCode::NOT_FOUND, format!("no gRPC service at {path}"))),
        };
    }
    let wire = match content_type.as_str() {
        "application/x-protobuf" => Wire::HttpProtobuf,
        "application/json" => Wire::HttpJson,
        other => return Ok(status(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("content type {other:?}"))),
    };
    let path = request.uri().path().to_owned();
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return Ok(status(StatusCode::BAD_REQUEST, e.to_string())),
    };
    let reply = match path.as_str() {
        "/v1/traces" => decode::<ExportTraceServiceRequest>(wire, &body).map(|request| {
            shared.traces(Export { wire, tls, request });
            encode(wire, &ExportTraceServiceResponse { partial_success: None })
        }),
        "/v1/metrics" => decode::<ExportMetricsServiceRequest>(wire, &body).map(|request| {
            shared.record(|r| r.metrics.push(Export { wire, tls, request }));
            encode(wire, &ExportMetricsServiceResponse { partial_success: None })
        }),
        other => return Ok(status(StatusCode::NOT_FOUND, format!("no OTLP signal at {other}"))),
    };
    Ok(match reply {
        Ok(bytes) => {
            let content_type =
                if wire == Wire::HttpJson { "application/json" } else { "application/x-protobuf" };
            let mut response = Response::new(tonic::body::Body::new(Full::new(bytes)));
            response
                .headers_mut()
                .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
            response
        }
        Err(e) => status(StatusCode::BAD_REQUEST, e),
    })
}

fn decode<T: prost::Message + Default + serde::de::DeserializeOwned>(
    wire: Wire,
    body: &[u8],
) -> Result<T, String> {
    match wire {
        Wire::HttpJson => serde_json::from_slice(body).map_err(|e| format!("not OTLP JSON: {e}")),
        _ => T::decode(body).map_err(|e| format!("not OTLP protobuf: {e}")),
    }
}

fn encode<T: prost::Message + serde::Serialize>(wire: Wire, message: &T) -> Bytes {
    match wire {
        Wire::HttpJson => Bytes::from(serde_json::to_vec(message).unwrap_or_default()),
        _ => Bytes::from(message.encode_to_vec()),
    }
}

fn status(code: StatusCode, why: String) -> Reply {
    let mut response = Response::new(tonic::body::Body::new(Full::new(Bytes::from(why))));
    *response.status_mut() = code;
    response
}

/// The gRPC services: record what they are sent.
#[derive(Debug)]
struct Sink {
    tls: bool,
    shared: Arc<Shared>,
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let (tls, request) = (self.tls, request.into_inner());
        self.shared.traces(Export { wire: Wire::Grpc, tls, request });
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tonic::async_trait]
impl MetricsService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let (tls, request) = (self.tls, request.into_inner());
        self.shared.record(|r| r.metrics.push(Export { wire: Wire::Grpc, tls, request }));
        Ok(tonic::Response::new(ExportMetricsServiceResponse { partial_success: None }))
    }
}

/// A port that accepts connections and never answers: an exporter's requests
/// there hang until its timeout.
#[derive(Debug)]
pub struct Unresponsive {
    address: SocketAddr,
    _listener: std::net::TcpListener,
}

impl Unresponsive {
    pub fn bind() -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        Ok(Self { address: listener.local_addr()?, _listener: listener })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }
}
