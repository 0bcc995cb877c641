//! The service's AsyncAPI 3.0 document, built from the endpoints it serves and
//! the typed messages it says it sends: the same descriptors the runtime runs,
//! so the contract cannot drift from the code.
//!
//! | service | document |
//! |---|---|
//! | a handler | a `receive` operation on a channel whose address is its subject (its template, with `{capture}` parameters) |
//! | its queue group | the operation's NATS binding (`queue`) |
//! | its payload type (`Json<T>`, a typed message, `String`, `Bytes`) | the channel's message, with a JSON Schema (feature `schemars`, types deriving `JsonSchema`) under `components/schemas` |
//! | its reply type (core handlers) | the operation's `reply`, on a channel without an address (NATS inboxes are per request) |
//! | a JetStream consumer | `x-nats-otel-jetstream` on its operation: stream, durable, filters, deliver, `ack_wait`, `max_deliver`, backoff, `max_ack_pending`, dead letter, and for a batch handler `batch_size` and `batch_wait` |
//! | [`NatsService::sends`](crate::NatsService::sends) | a `send` operation on the message's template |
//!
//! Every message lists the W3C trace-context headers the runtime reads and writes.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::endpoint::{AckMode, Deliver, Endpoint, JetStreamConsumer};
use crate::handler::shape::{HandlerShape, PayloadShape, Schemas};

/// The AsyncAPI version the documents follow.
pub const ASYNCAPI_VERSION: &str = "3.0.0";

/// An AsyncAPI 3.0 document (JSON), from
/// [`NatsService::asyncapi`](crate::NatsService::asyncapi).
///
/// `Display` writes it as indented JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct AsyncApi(Value);

impl AsyncApi {
    /// The document as a JSON value.
    pub fn as_value(&self) -> &Value {
        &self.0
    }

    /// The document as a JSON value.
    pub fn into_value(self) -> Value {
        self.0
    }

    /// The document as compact JSON.
    pub fn to_json(&self) -> String {
        self.0.to_string()
    }
}

impl fmt::Display for AsyncApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pretty = serde_json::to_string_pretty(&self.0).map_err(|_| fmt::Error)?;
        f.write_str(&pretty)
    }
}

impl serde::Serialize for AsyncApi {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// The document's `info`.
#[derive(Debug, Clone)]
pub(crate) struct Info<'a> {
    pub title: &'a str,
    pub version: &'a str,
    pub description: Option<&'a str>,
}

/// A served endpoint, as configured (prefix applied), with what its handler reads
/// and answers.
#[derive(Debug)]
pub(crate) struct Received {
    pub endpoint: Endpoint,
    pub shape: HandlerShape,
}

/// A typed message the service sends.
#[derive(Debug)]
pub(crate) struct Sent {
    pub template: String,
    pub stream: Option<&'static str>,
    pub shape: PayloadShape,
}

/// How the document describes each kind of thing; one builder per document, so
/// ids stay unique and shared messages are defined once.
struct Builder {
    channels: Map<String, Value>,
    operations: Map<String, Value>,
    messages: Map<String, Value>,
    /// Message component keys by the shape they describe.
    message_keys: Vec<(PayloadShape, String)>,
    ids: BTreeSet<String>,
}

/// Builds the document. `schemas` holds the schemas the shapes refer to.
pub(crate) fn document(info: &Info<'_>, received: &[Received], sent: &[Sent], schemas: Schemas) -> AsyncApi {
    let mut builder = Builder {
        channels: Map::new(),
        operations: Map::new(),
        messages: Map::new(),
        message_keys: Vec::new(),
        ids: BTreeSet::new(),
    };
    for endpoint in received {
        builder.receive(endpoint);
    }
    for message in sent {
        builder.send(message);
    }
    let mut info_object = json!({ "title": info.title, "version": info.version });
    if let Some(description) = info.description {
        info_object["description"] = json!(description);
    }
    let mut components = Map::new();
    if !builder.messages.is_empty() {
        components.insert("messages".into(), Value::Object(builder.messages));
    }
    let definitions = schemas.into_definitions();
    if !definitions.is_empty() {
        components.insert("schemas".into(), Value::Object(definitions));
    }
    let mut document = json!({
        "asyncapi": ASYNCAPI_VERSION,
        "info": info_object,
        "defaultContentType": "application/json",
        "channels": builder.channels,
        "operations": builder.operations,
    });
    if !components.is_empty() {
        document["components"] = Value::Object(components);
    }
    AsyncApi(document)
}

impl Builder {
    fn receive(&mut self, received: &Received) {
        let (name, address, queue, extension) = match &received.endpoint {
            Endpoint::Subscribe(subscription) => (
                subscription.name.as_deref(),
                Some(address_of(subscription.template.as_deref(), subscription.subject())),
                subscription.queue_group(),
                None,
            ),
            Endpoint::Consume(consumer) => (
                consumer.name.as_deref(),
                match consumer.filters.as_slice() {
                    [only] => Some(address_of(consumer.template.as_deref(), only)),
                    _ => None,
                },
                None,
                Some(jetstream_extension(consumer)),
            ),
        };
        let id = self.unique_id(&crate::endpoint::discovery::endpoint_name(name));
        let payload = received.shape.payload.as_ref().map(|shape| self.message(shape));
        self.channels.insert(id.clone(), channel(address.as_deref(), payload.as_deref()));

        let mut operation = operation("receive", &id, payload.as_deref());
        if let Some(description) = received.shape.description {
            operation.insert("description".into(), json!(description));
        }
        if let Some(name) = name {
            operation.insert("x-nats-otel-handler".into(), json!(name));
        }
        if let Some(queue) = queue {
            operation
                .insert("bindings".into(), json!({ "nats": { "queue": queue, "bindingVersion": "0.1.0" } }));
        }
        let replies = matches!(received.endpoint, Endpoint::Subscribe(_));
        if let (true, Some(reply)) = (replies, &received.shape.reply) {
            let key = self.message(reply);
            let reply_id = self.unique_id(&format!("{id}_reply"));
            self.channels.insert(reply_id.clone(), channel(None, Some(&key)));
            operation.insert(
                "reply".into(),
                json!({
                    "channel": { "$ref": format!("#/channels/{reply_id}") },
                    "messages": [{ "$ref": format!("#/channels/{reply_id}/messages/{key}") }],
                }),
            );
        }
        if let Some(extension) = extension {
            operation.insert("x-nats-otel-jetstream".into(), extension);
        }
        self.operations.insert(id, Value::Object(operation));
    }

    fn send(&mut self, sent: &Sent) {
        let key = self.message(&sent.shape);
        let id = self.unique_id(&format!("send_{key}"));
        self.channels.insert(id.clone(), channel(Some(&sent.template), Some(&key)));
        let mut operation = operation("send", &id, Some(&key));
        if let Some(stream) = sent.stream {
            operation.insert("x-nats-otel-jetstream".into(), json!({ "stream": stream }));
        }
        self.operations.insert(id, Value::Object(operation));
    }

    /// The component key of `shape`'s message, defining it on first use.
    fn message(&mut self, shape: &PayloadShape) -> String {
        if let Some((_, key)) = self.message_keys.iter().find(|(known, _)| known == shape) {
            return key.clone();
        }
        let key = self.unique_id(&shape.name);
        let mut message = json!({ "name": key, "title": shape.name, "headers": trace_headers() });
        if let Some(content_type) = shape.content_type {
            message["contentType"] = json!(content_type);
        }
        let payload = match (&shape.schema, shape.content_type) {
            (Some(schema), _) => Some(schema.clone()),
            (None, Some("text/plain")) => Some(json!({ "type": "string" })),
            (None, Some("application/octet-stream")) => Some(json!({ "type": "string", "format": "binary" })),
            (None, _) => None,
        };
        if let Some(payload) = payload {
            message["payload"] = payload;
        }
        self.messages.insert(key.clone(), message);
        self.message_keys.push((shape.clone(), key.clone()));
        key
    }

    /// `wanted` made a valid component key (letters, digits, `.`, `-`, `_`),
    /// numbered when taken.
    fn unique_id(&mut self, wanted: &str) -> String {
        let base: String = wanted
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
            .collect();
        let base = if base.is_empty() { "endpoint".to_owned() } else { base };
        let mut id = base.clone();
        let mut n = 2;
        while !self.ids.insert(id.clone()) {
            id = format!("{base}_{n}");
            n += 1;
        }
        id
    }
}

/// The subject a channel is at: the template (`orders.{region}.created`) when
/// there is one, else the subject (wildcards and all).
fn address_of(template: Option<&str>, subject: &str) -> String {
    template.unwrap_or(subject).to_owned()
}

/// A channel at `address` (`None`: dynamic, as a reply inbox) with a message.
fn channel(address: Option<&str>, message: Option<&str>) -> Value {
    let mut channel = json!({ "address": address });
    let parameters: Map<String, Value> = address
        .map(|address| {
            address
                .split('.')
                .enumerate()
                .filter_map(|(position, token)| {
                    let name = token.strip_prefix('{')?.strip_suffix('}')?;
                    let description = format!("Token {} of the subject.", position + 1);
                    Some((name.to_owned(), json!({ "description": description })))
                })
                .collect()
        })
        .unwrap_or_default();
    if !parameters.is_empty() {
        channel["parameters"] = Value::Object(parameters);
    }
    if let Some(key) = message {
        channel["messages"] = json!({ key: { "$ref": format!("#/components/messages/{key}") } });
    }
    channel
}

fn operation(action: &str, channel: &str, message: Option<&str>) -> Map<String, Value> {
    let mut operation = Map::new();
    operation.insert("action".into(), json!(action));
    operation.insert("channel".into(), json!({ "$ref": format!("#/channels/{channel}") }));
    if let Some(key) = message {
        operation
            .insert("messages".into(), json!([{ "$ref": format!("#/channels/{channel}/messages/{key}") }]));
    }
    operation
}

/// The headers every message may carry: the trace context the runtime
/// propagates.
fn trace_headers() -> Value {
    json!({
        "type": "object",
        "properties": {
            "traceparent": {
                "type": "string",
                "description": "W3C Trace Context of the sending span (written by the publisher, read by the handler).",
            },
            "tracestate": { "type": "string", "description": "W3C Trace Context vendor state." },
        },
    })
}

/// A consumer's settings, as `x-nats-otel-jetstream`.
fn jetstream_extension(consumer: &JetStreamConsumer) -> Value {
    let deliver = match consumer.deliver {
        Deliver::All => "all",
        Deliver::New => "new",
        Deliver::Last => "last",
        Deliver::LastPerSubject => "last_per_subject",
    };
    let ack = match consumer.ack {
        AckMode::Fire => "fire",
        AckMode::Confirmed => "confirmed",
    };
    let mut extension = json!({
        "stream": consumer.stream,
        "durable": consumer.durable,
        "filter_subjects": consumer.filters,
        "deliver": deliver,
        "ack": ack,
    });
    if consumer.is_ordered() {
        // Each instance's own ephemeral consumer: no durable name, no acks.
        extension["ordered"] = json!(true);
        if let Some(fields) = extension.as_object_mut() {
            fields.remove("durable");
        }
        extension["ack"] = json!("none");
    }
    if let Some(ack_wait) = consumer.ack_wait {
        extension["ack_wait"] = json!(duration(ack_wait));
    }
    if let Some(max_deliver) = consumer.max_deliver {
        extension["max_deliver"] = json!(max_deliver);
    }
    if !consumer.backoff.is_empty() {
        extension["backoff"] = json!(consumer.backoff.iter().copied().map(duration).collect::<Vec<_>>());
    }
    if let Some(max_ack_pending) = consumer.max_ack_pending {
        extension["max_ack_pending"] = json!(max_ack_pending);
    }
    if let Some(dead_letter) = &consumer.dead_letter {
        extension["dead_letter"] = json!(dead_letter);
    }
    if let Some(batches) = consumer.batches {
        // The handler takes its messages in batches.
        extension["batch_size"] = json!(batches.size);
        extension["batch_wait"] = json!(duration(batches.wait));
    }
    extension
}

/// `1500ms`, `30s`: as the consumer attribute takes durations.
fn duration(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else if duration.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{}ns", duration.as_nanos())
    }
}
