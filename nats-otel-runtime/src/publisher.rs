//! A traced publisher around `async_nats::Client`.

use std::sync::Arc;

use async_nats::{Client, HeaderMap, Message, Subject};
use bytes::Bytes;
use opentelemetry::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::ServiceError;
use crate::error::{PublishError, PublishErrorKind, RequestError, RequestErrorKind};
use crate::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
use crate::spans::{InSpan, Outbound, Peer, SendSpans, record_error};

/// Publishes and requests with a span per message and the trace context injected
/// into the headers, so subscribers continue the trace.
///
/// Cheap to clone. Spans are children of the current span: inside a handler, of
/// its `process` span.
///
/// ```no_run
/// # async fn demo(client: async_nats::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use nats_otel_runtime::Publisher;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Quote { cents: u64 }
///
/// let publisher = Publisher::new(client);
/// publisher.publish("orders.eu", "payload").await?;
/// let quote: Quote = publisher.request_json("quotes.get", &serde_json::json!({"sku": "A1"})).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Publisher {
    client: Client,
    spans: Arc<SendSpans>,
}

impl Publisher {
    /// Wraps a connected client.
    pub fn new(client: Client) -> Self {
        let spans = Arc::new(SendSpans::new(Peer::of(&client)));
        Self { client, spans }
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Publishes `payload` to `subject` in a `send {subject}` PRODUCER span.
    pub async fn publish(
        &self,
        subject: impl AsRef<str>,
        payload: impl Into<Bytes>,
    ) -> Result<(), PublishError> {
        self.publish_with_headers(subject, HeaderMap::new(), payload).await
    }

    /// Publishes with headers; the trace context is added, other headers are kept.
    pub async fn publish_with_headers(
        &self,
        subject: impl AsRef<str>,
        mut headers: HeaderMap,
        payload: impl Into<Bytes>,
    ) -> Result<(), PublishError> {
        let subject = subject.as_ref();
        let payload = payload.into();
        let span = self.spans.start(Outbound::Send, subject, payload.len());
        let result = async {
            let subject = publish_subject(subject)
                .map_err(|e| PublishError::with_source(PublishErrorKind::InvalidSubject, e))?;
            crate::propagation::inject_context(&span_context(&span), &mut headers);
            self.client
                .publish_with_headers(subject, headers, payload)
                .await
                .map_err(|e| PublishError::with_source(PublishErrorKind::Send, e))
        };
        let result = InSpan::new(&span, result).await;
        if let Err(e) = &result {
            record_error(&span, publish_error_type(e.kind()), &e.to_string());
        }
        result
    }

    /// Publishes `value` encoded as JSON.
    pub async fn publish_json<T: Serialize + ?Sized>(
        &self,
        subject: impl AsRef<str>,
        value: &T,
    ) -> Result<(), PublishError> {
        let payload =
            serde_json::to_vec(value).map_err(|e| PublishError::with_source(PublishErrorKind::Encode, e))?;
        self.publish(subject, payload).await
    }

    /// Sends a request in a `request {subject}` CLIENT span and waits for the reply
    /// (the client's request timeout applies).
    ///
    /// A reply with `Nats-Service-Error` headers is an error of kind
    /// [`RequestErrorKind::Service`] whose [`service_error`](RequestError::service_error)
    /// gives the code and description.
    pub async fn request(
        &self,
        subject: impl AsRef<str>,
        payload: impl Into<Bytes>,
    ) -> Result<Message, RequestError> {
        self.request_with_headers(subject, HeaderMap::new(), payload).await
    }

    /// Sends a request with headers; the trace context is added, other headers are kept.
    pub async fn request_with_headers(
        &self,
        subject: impl AsRef<str>,
        mut headers: HeaderMap,
        payload: impl Into<Bytes>,
    ) -> Result<Message, RequestError> {
        let subject = subject.as_ref();
        let payload = payload.into();
        let span = self.spans.start(Outbound::Request, subject, payload.len());
        let result = async {
            let subject = publish_subject(subject)
                .map_err(|e| RequestError::with_source(RequestErrorKind::InvalidSubject, e))?;
            crate::propagation::inject_context(&span_context(&span), &mut headers);
            let reply = self.client.request_with_headers(subject, headers, payload).await.map_err(|e| {
                let kind = match e.kind() {
                    async_nats::RequestErrorKind::TimedOut => RequestErrorKind::TimedOut,
                    async_nats::RequestErrorKind::NoResponders => RequestErrorKind::NoResponders,
                    _ => RequestErrorKind::Other,
                };
                RequestError::with_source(kind, e)
            })?;
            match service_error(&reply) {
                Some(error) => {
                    let code = format!("code {}", error.code());
                    Err(RequestError::with_source(RequestErrorKind::Service, error).context(code))
                }
                None => Ok(reply),
            }
        };
        let result = InSpan::new(&span, result).await;
        if let Err(e) = &result {
            let error_type = match e.service_error() {
                Some(service) => service.code().to_string(),
                None => request_error_type(e.kind()).to_owned(),
            };
            record_error(&span, &error_type, &e.to_string());
        }
        result
    }

    /// Sends `request` as JSON and decodes the JSON reply.
    pub async fn request_json<Req, Resp>(
        &self,
        subject: impl AsRef<str>,
        request: &Req,
    ) -> Result<Resp, RequestError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let payload = serde_json::to_vec(request)
            .map_err(|e| RequestError::with_source(RequestErrorKind::Encode, e))?;
        let reply = self.request(subject, payload).await?;
        serde_json::from_slice(&reply.payload)
            .map_err(|e| RequestError::with_source(RequestErrorKind::Decode, e))
    }
}

/// The context to inject: the span's, or the ambient OpenTelemetry context when
/// no tracing subscriber records spans.
fn span_context(span: &tracing::Span) -> Context {
    if span.is_disabled() { Context::current() } else { span.context() }
}

fn publish_subject(subject: &str) -> Result<Subject, nats_otel_subject::SubjectError> {
    nats_otel_subject::Subject::parse(subject, nats_otel_subject::Usage::Publish)?;
    Ok(Subject::from(subject))
}

/// A `Nats-Service-Error` reply, as sent by nats-otel, async-nats' service API and nats.go micro.
fn service_error(reply: &Message) -> Option<ServiceError> {
    let headers = reply.headers.as_ref()?;
    let code = headers.get(NATS_SERVICE_ERROR_CODE)?;
    let code = code.as_str().trim().parse().unwrap_or(500);
    let description = headers.get(NATS_SERVICE_ERROR).map(|v| v.as_str().to_owned()).unwrap_or_default();
    Some(ServiceError::new(code, description))
}

fn publish_error_type(kind: PublishErrorKind) -> &'static str {
    match kind {
        PublishErrorKind::InvalidSubject => "invalid_subject",
        PublishErrorKind::Encode => "encode",
        PublishErrorKind::Send => "async_nats::PublishError",
    }
}

fn request_error_type(kind: RequestErrorKind) -> &'static str {
    match kind {
        RequestErrorKind::InvalidSubject => "invalid_subject",
        RequestErrorKind::Encode => "encode",
        RequestErrorKind::TimedOut => "timeout",
        RequestErrorKind::NoResponders => "no_responders",
        RequestErrorKind::Service => "service_error",
        RequestErrorKind::Decode => "decode",
        RequestErrorKind::Other => "_OTHER",
    }
}
