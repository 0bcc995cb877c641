//! Batch publishing, traced as the messaging conventions describe it: a
//! `create {subject}` PRODUCER span per message, whose context goes into that
//! message's headers, and one `send` CLIENT span for the batch that links to
//! every `create` span and counts what succeeded and what failed.

use std::time::Instant;

use async_nats::jetstream::publish::PublishAck;
use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use serde::Serialize;

use super::{
    MessageId, Publisher, classify, denied_context, derived_id, outbound_subject, publish_error_type,
    transient,
};
use crate::error::{BoxError, PublishError, PublishErrorKind, StreamPublishError, StreamPublishErrorKind};
use crate::handler::message::NatsMessage;
use crate::otel::metrics::SentMessage;
use crate::otel::semconv;
use crate::otel::spans::{Fault, record_error};

/// One message of a batch: [`Publisher::publish_batch`] or
/// [`Publisher::publish_batch_to_stream`].
///
/// ```
/// use nats_otel_runtime::publisher::Outgoing;
/// let batch = vec![
///     Outgoing::new("orders.eu", "first"),
///     Outgoing::new("orders.us", "second").message_id("order-2"),
/// ];
/// ```
#[derive(Debug, Clone)]
pub struct Outgoing {
    subject: String,
    template: Option<&'static str>,
    headers: HeaderMap,
    payload: Bytes,
    message_id: Option<MessageId>,
    expected_stream: Option<String>,
}

impl Outgoing {
    /// `payload` to `subject`.
    pub fn new(subject: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Self {
            subject: subject.into(),
            template: None,
            headers: HeaderMap::new(),
            payload: payload.into(),
            message_id: None,
            expected_stream: None,
        }
    }

    /// `value` encoded as JSON, to `subject`.
    pub fn json<T: Serialize + ?Sized>(subject: impl Into<String>, value: &T) -> Result<Self, PublishError> {
        let payload =
            serde_json::to_vec(value).map_err(|e| PublishError::with_source(PublishErrorKind::Encode, e))?;
        Ok(Self::new(subject, payload))
    }

    /// A typed message to its own subject, encoded with its codec; its spans are
    /// named after the subject template. A type tied to a stream
    /// (`#[nats(stream = …)]`) expects that stream on JetStream.
    pub fn message<M: NatsMessage>(message: &M) -> Result<Self, PublishError> {
        let subject =
            message.subject().map_err(|e| PublishError::with_source(PublishErrorKind::InvalidSubject, e))?;
        let payload = message.encode().map_err(|e| PublishError::with_source(PublishErrorKind::Encode, e))?;
        let mut outgoing = Self::new(subject, payload);
        outgoing.template = Some(M::TEMPLATE);
        outgoing.expected_stream = M::STREAM.map(str::to_owned);
        Ok(outgoing)
    }

    /// Headers to send (the trace context is added).
    #[must_use]
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        self.headers = headers;
        self
    }

    /// `Nats-Msg-Id`, on JetStream: the stream stores a message with an id it
    /// has seen within its duplicate window once (the ack says `duplicate`).
    #[must_use]
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(MessageId::Given(id.into()));
        self
    }

    /// `Nats-Msg-Id` derived from the subject and payload, on JetStream: the
    /// same content published twice is stored once.
    #[must_use]
    pub fn derived_message_id(mut self) -> Self {
        self.message_id = Some(MessageId::Derived);
        self
    }

    /// On JetStream, fails this message unless its subject is captured by `stream`.
    #[must_use]
    pub fn expected_stream(mut self, stream: impl Into<String>) -> Self {
        self.expected_stream = Some(stream.into());
        self
    }
}

/// A message of a batch, made ready to send: its full subject, its headers
/// carrying its `create` span's context.
struct Ready {
    subject: String,
    template: Option<String>,
    headers: HeaderMap,
    payload: Bytes,
    message_id: Option<String>,
    expected_stream: Option<String>,
}

impl Ready {
    fn nats_subject(&self) -> Result<Subject, BoxError> {
        outbound_subject(&self.subject, self.template.as_deref())
    }
}

/// A batch on its way: its messages and its `send` span.
struct Batch {
    messages: Vec<Ready>,
    send: Context,
    name: String,
    started: Instant,
}

impl Publisher {
    /// Publishes every message on core NATS as one traced operation: a `create`
    /// span per message (its context in that message's headers, so each
    /// subscriber continues its own message's trace) and one `send` span with
    /// `messaging.batch.message_count` that links to them all.
    ///
    /// Gives one result per message, in order. A message that fails (a subject
    /// that is not one, the connection gone, a publish the server denied) does
    /// not stop the others; each failure is a `Batch item failed` event on the
    /// `send` span, which counts `batch.success_count` and `batch.failure_count`
    /// and fails when any message did. As with [`publish`](Self::publish), a
    /// message is sent once it is in the client's buffer.
    ///
    /// ```no_run
    /// # async fn demo(publisher: nats_otel_runtime::Publisher) {
    /// use nats_otel_runtime::publisher::Outgoing;
    /// let results = publisher
    ///     .publish_batch((1..=100).map(|id| Outgoing::new("orders.eu", format!("order {id}"))))
    ///     .await;
    /// assert!(results.iter().all(Result::is_ok));
    /// # }
    /// ```
    pub async fn publish_batch(
        &self,
        messages: impl IntoIterator<Item = Outgoing>,
    ) -> Vec<Result<(), PublishError>> {
        let batch = self.prepare(messages);
        let mut results = Vec::with_capacity(batch.messages.len());
        for message in &batch.messages {
            let result = async {
                let subject = message
                    .nats_subject()
                    .map_err(|e| PublishError::with_source(PublishErrorKind::InvalidSubject, e))?;
                let denied = self.events.as_ref().is_some_and(|events| events.recently_denied(&subject));
                self.client
                    .publish_with_headers(subject.clone(), message.headers.clone(), message.payload.clone())
                    .await
                    .map_err(|e| PublishError::with_source(PublishErrorKind::Send, e))?;
                if denied {
                    return Err(PublishError::new(PublishErrorKind::PermissionDenied)
                        .context(denied_context(&subject)));
                }
                Ok(())
            }
            .await;
            results.push(result);
        }
        self.finish(batch, &results, |e| publish_error_type(e.kind()));
        results
    }

    /// Publishes every message to JetStream as one traced operation, and waits
    /// for every acknowledgement: the messages are all sent, then their acks
    /// awaited together, so a batch costs about one round trip (or one ack
    /// timeout when the connection is lost), not one per message.
    ///
    /// Spans as in [`publish_batch`](Self::publish_batch); the `send` span also
    /// records `messaging.nats.jetstream.publish_attempts`. Gives one result per
    /// message, in order: its [`PublishAck`] or why it was not stored. Messages
    /// that fail for a reason that may pass are sent again, together, as the
    /// publisher's [`PublishRetry`](super::PublishRetry) says (each round a
    /// `publish retry` event); give them message ids so that a retried message
    /// whose first ack was lost is stored once.
    ///
    /// ```no_run
    /// # async fn demo(publisher: nats_otel_runtime::Publisher) {
    /// use nats_otel_runtime::publisher::Outgoing;
    /// let results = publisher
    ///     .publish_batch_to_stream(
    ///         (1..=100).map(|id| Outgoing::new("orders.eu", format!("order {id}")).message_id(format!("order-{id}"))),
    ///     )
    ///     .await;
    /// let stored = results.iter().filter(|r| r.is_ok()).count();
    /// # }
    /// ```
    pub async fn publish_batch_to_stream(
        &self,
        messages: impl IntoIterator<Item = Outgoing>,
    ) -> Vec<Result<PublishAck, StreamPublishError>> {
        let mut batch = self.prepare(messages);
        let mut results: Vec<Option<Result<PublishAck, StreamPublishError>>> =
            batch.messages.iter().map(|_| None).collect();
        for (message, result) in batch.messages.iter_mut().zip(&mut results) {
            if let Err(e) = jetstream_headers(message) {
                *result = Some(Err(e));
            }
        }
        let span = batch.send.span();
        let mut waiting: Vec<usize> = (0..results.len()).filter(|&i| results[i].is_none()).collect();
        let mut attempts = 0u32;
        while !waiting.is_empty() {
            attempts += 1;
            // Everything goes out before the first ack is awaited.
            let mut in_flight = Vec::with_capacity(waiting.len());
            for &index in &waiting {
                let message = &batch.messages[index];
                let subject = match message.nats_subject() {
                    Ok(subject) => subject,
                    Err(e) => {
                        results[index] = Some(Err(StreamPublishError::with_source(
                            StreamPublishErrorKind::InvalidSubject,
                            e,
                        )));
                        continue;
                    }
                };
                // Listening for a denial starts before the publish goes out.
                let denial = self.events.as_ref().map(|events| events.denial(&subject));
                let sent = self
                    .jetstream
                    .publish_with_headers(subject, message.headers.clone(), message.payload.clone())
                    .await;
                in_flight.push((index, sent, denial));
            }
            // Awaited together: an ack's timeout starts when it is first
            // polled, so awaiting them one by one would add the timeouts up
            // (50 lost acks, 250 s) where together they take one.
            let acks = in_flight.into_iter().map(|(index, sent, denial)| async move {
                let acked = match sent {
                    Err(e) => Err(Some(e)),
                    Ok(ack) => match denial {
                        None => ack.await.map_err(Some),
                        Some(denial) => tokio::select! {
                            biased;
                            acked = ack => acked.map_err(Some),
                            () = denial => Err(None),
                        },
                    },
                };
                (index, acked)
            });
            let mut again = Vec::new();
            for (index, acked) in futures_util::future::join_all(acks).await {
                let message = &batch.messages[index];
                match acked {
                    Ok(ack) => results[index] = Some(Ok(ack)),
                    Err(None) => {
                        results[index] =
                            Some(Err(StreamPublishError::new(StreamPublishErrorKind::PermissionDenied)
                                .context(denied_context(&message.subject))));
                    }
                    Err(Some(e)) if attempts < self.retry.attempts && transient(&e) => {
                        let error = classify(e, message.expected_stream.is_some());
                        span.add_event(
                            "publish retry",
                            vec![
                                KeyValue::new(
                                    "messaging.nats.jetstream.publish_attempt",
                                    i64::from(attempts),
                                ),
                                KeyValue::new(semconv::MESSAGING_NATS_BATCH_INDEX, index as i64),
                                KeyValue::new(semconv::ERROR_TYPE, error.kind().error_type()),
                                KeyValue::new("exception.message", format!("{error:#}")),
                            ],
                        );
                        again.push(index);
                    }
                    Err(Some(e)) => {
                        results[index] = Some(Err(classify(e, message.expected_stream.is_some())))
                    }
                }
            }
            if !again.is_empty() {
                let delay = self.retry.delay_after(attempts);
                tracing::warn!(target: crate::otel::TARGET, parent: None, attempt = attempts,
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "{}: {} of {} messages to retry", batch.name, again.len(), results.len());
                tokio::time::sleep(delay).await;
            }
            waiting = again;
        }
        if attempts > 0 {
            span.set_attribute(KeyValue::new(
                "messaging.nats.jetstream.publish_attempts",
                i64::from(attempts),
            ));
        }
        let results: Vec<_> = results
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| Err(StreamPublishError::new(StreamPublishErrorKind::Other)))
            })
            .collect();
        self.finish(batch, &results, |e| e.kind().error_type());
        results
    }

    /// Opens the batch's spans and puts each message's context in its headers.
    fn prepare(&self, messages: impl IntoIterator<Item = Outgoing>) -> Batch {
        let started = Instant::now();
        let parent = self.spans.batch_parent();
        let messages = messages.into_iter();
        let mut ready = Vec::with_capacity(messages.size_hint().0);
        let mut created = Vec::with_capacity(ready.capacity());
        for message in messages {
            let subject = self.full(&message.subject).into_owned();
            let template = message.template.map(|t| self.full(t).into_owned());
            let message_id = message.message_id.map(|id| match id {
                MessageId::Given(id) => id,
                MessageId::Derived => derived_id(&subject, &message.payload),
            });
            let cx = self.spans.create(
                &parent,
                &subject,
                template.as_deref(),
                message.payload.len(),
                message_id.as_deref(),
            );
            let mut headers = message.headers;
            crate::otel::propagation::inject_context(&cx, &mut headers);
            self.mark_for_broker(&cx, &mut headers);
            created.push(cx);
            ready.push(Ready {
                subject,
                template,
                headers,
                payload: message.payload,
                message_id,
                expected_stream: message.expected_stream,
            });
        }
        // Named after the destination when every message shares it.
        let destination = ready.first().filter(|first| {
            ready.iter().all(|m| match &first.template {
                Some(template) => m.template.as_ref() == Some(template),
                None => m.template.is_none() && m.subject == first.subject,
            })
        });
        let destination = destination.map(|m| (m.subject.as_str(), m.template.as_deref()));
        let name = match destination {
            Some((subject, template)) => format!("send {}", template.unwrap_or(subject)),
            None => "send".to_owned(),
        };
        let send = if ready.is_empty() {
            Context::new()
        } else {
            self.spans.start_batch(&parent, name.clone(), destination, ready.len(), &created)
        };
        Batch { messages: ready, send, name, started }
    }

    /// Records the batch's outcome on its `send` span and in the metrics.
    fn finish<T, E: std::fmt::Display>(
        &self,
        batch: Batch,
        results: &[Result<T, E>],
        error_type: impl Fn(&E) -> &'static str,
    ) {
        if results.is_empty() {
            return;
        }
        let span = batch.send.span();
        let failures: Vec<(usize, &E)> =
            results.iter().enumerate().filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e))).collect();
        span.set_attributes([
            KeyValue::new(semconv::BATCH_SUCCESS_COUNT, (results.len() - failures.len()) as i64),
            KeyValue::new(semconv::BATCH_FAILURE_COUNT, failures.len() as i64),
        ]);
        for &(index, error) in &failures {
            let message = &batch.messages[index];
            let mut attributes = vec![
                KeyValue::new(semconv::MESSAGING_NATS_BATCH_INDEX, index as i64),
                KeyValue::new(semconv::MESSAGING_DESTINATION_NAME, message.subject.clone()),
                KeyValue::new(semconv::ERROR_TYPE, error_type(error)),
                KeyValue::new("exception.message", format!("{error:#}")),
            ];
            if let Some(id) = &message.message_id {
                attributes.push(KeyValue::new(semconv::MESSAGING_MESSAGE_ID, id.clone()));
            }
            span.add_event("Batch item failed", attributes);
        }
        if let Some(&(index, first)) = failures.first() {
            record_error(
                &batch.send,
                &batch.name,
                Fault::Service,
                error_type(first),
                &format!(
                    "{} of {} messages failed; the first, message {index}: {first:#}",
                    failures.len(),
                    results.len()
                ),
            );
        }
        span.end();
        let sent: Vec<SentMessage<'_>> = batch
            .messages
            .iter()
            .zip(results)
            .map(|(message, result)| SentMessage {
                body_size: message.payload.len(),
                template: message.template.as_deref(),
                error_type: result.as_ref().err().map(&error_type),
            })
            .collect();
        let failed = failures.first().map(|(_, e)| error_type(e));
        self.metrics.sent_batch(&sent, batch.started.elapsed(), failed);
    }
}

/// The JetStream headers of a message: its id and expected stream.
fn jetstream_headers(message: &mut Ready) -> Result<(), StreamPublishError> {
    let header = |value: &str| {
        value
            .parse::<async_nats::HeaderValue>()
            .map_err(|e| StreamPublishError::with_source(StreamPublishErrorKind::Other, e))
    };
    if let Some(id) = &message.message_id {
        message.headers.insert(async_nats::header::NATS_MESSAGE_ID, header(id)?);
    }
    if let Some(stream) = &message.expected_stream {
        message.headers.insert(async_nats::header::NATS_EXPECTED_STREAM, header(stream)?);
    }
    Ok(())
}
