//! Procedural macros of nats-otel. Depend on `nats-otel-runtime`, which re-exports
//! them with their documentation; this crate's API is an implementation detail.
//!
//! Set `NATS_OTEL_MACROS_DEBUG=1` while building to print every expansion.
//!
//! Each macro goes parse → model → check → expand, as serde_derive does, so every
//! error is found before anything is emitted and each step is unit-tested on
//! `parse_quote!` input. `consumer/`, `subscribe/` and `message/` each have a
//! `model.rs` (the options, typed and spanned), `parse.rs` (arguments into the
//! model: shapes, choices, durations, the subject grammar), `check.rs` (the rules
//! of `nats_otel_rules`, the ones the runtime checks too) and `expand.rs`.
//! `handler/` is what both attribute macros share: the pipeline, the common
//! options, the handler function's checks and the expansion around it. `args`
//! reads attribute arguments into typed values; `diagnostics` collects errors.

mod args;
mod consumer;
mod diagnostics;
mod duration;
mod handler;
mod identity;
mod kv;
mod message;
mod spanned;
mod stream;
mod subscribe;

use proc_macro::TokenStream;

/// Turns an `async fn` into a traced handler of a core NATS subscription.
///
/// The function's arguments are extractors (`Json<T>`, `Bytes`, `String`, `Subject`,
/// `HeaderMap`, `Message`, `State<T>`, `TraceContext`, `Envelope<T>`, or your own
/// `FromMessage`); it returns `()`, a reply (`Json<T>`, `Bytes`, `String`, …) or
/// `Result<reply, E>` with `E: HandlerError`. Register it with `NatsService::handler`.
///
/// ```
/// use nats_otel_runtime::prelude::*;
///
/// #[derive(Deserialize)]
/// struct Order { id: u64 }
///
/// #[nats_subscribe("orders.*", queue = "billing", concurrency = 16)]
/// async fn bill(Json(order): Json<Order>, subject: Subject) -> Result<(), ServiceError> {
///     tracing::info!(order.id = order.id, %subject, "billing");
///     Ok(())
/// }
///
/// # async fn run(client: async_nats::Client) -> Result<(), nats_otel_runtime::ServeError> {
/// NatsService::new(client).handler(bill).run_until(std::future::pending::<()>()).await
/// # }
/// # fn main() {}
/// ```
///
/// # Options
///
/// | option | default | meaning |
/// |---|---|---|
/// | `subject = "…"`, or a leading string | required, unless `message` | the subscription subject; `*` matches one token, `>` the rest, `{name}` one token passed to the argument `name` |
/// | `message = Type` | none | a `NatsMessage` type: subscribe to its pattern (or to `subject`, which must lie within it), handlers return its reply type |
/// | `queue = "…"` | none | queue group: each message goes to one member |
/// | `concurrency = N` | 64 | handlers running at once; `1` handles messages one by one, in order |
/// | `trace = "parent" \| "link"` | `"parent"` | continue the publisher's trace, or start a new one linked to it |
/// | `capture_headers = ["x-tenant"]` | none | record these headers' values on the span (`messaging.nats.message.header.<name>`, case-insensitive); nothing else is recorded |
/// | `capture_body = N` | off | record the first `N` bytes (1 to 65536) of the payload (`messaging.nats.message.body`, UTF-8 cut on a character boundary or base64) |
/// | `crate = "path"` | `::nats_otel_runtime` | where the runtime is, when re-exported under another name |
///
/// Every message is processed in a `process {subject}` CONSUMER span with the
/// OpenTelemetry messaging attributes; requests get `Ok` as the reply and `Err` as
/// NATS service error headers.
///
/// # Captures
///
/// A `{name}` token of the subject is parsed into the handler argument called
/// `name`, with `FromStr`; a token that does not parse rejects the message (an
/// error reply, or `term` on JetStream) with the reason. The handler subscribes to
/// the pattern (`orders.*.created`) and its spans are named after the template.
///
/// ```
/// # use nats_otel_runtime::prelude::*;
/// #[nats_subscribe("orders.{region}.{id}.created")]
/// async fn created(region: String, id: u64, Json(order): Json<serde_json::Value>) {}
/// # fn main() {}
/// ```
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[nats_subscribe("orders.{region}.{id}.created")] // error: the capture `{id}` has no argument
/// async fn created(region: String) {}
/// # fn main() {}
/// ```
///
/// # The function stays callable
///
/// The expansion keeps your function with its name and arguments; awaiting it gives
/// what your body returns, so unit tests call it directly:
///
/// ```
/// use nats_otel_runtime::prelude::*;
///
/// #[nats_subscribe("math.double")]
/// async fn double(Json(n): Json<i64>) -> Json<i64> { Json(n * 2) }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let Json(n) = double(Json(21)).await;
/// assert_eq!(n, 42);
/// # }
/// ```
///
/// Its future is tagged with a hidden descriptor type (the subject and options),
/// which is how `NatsService::handler(double)` finds them. Set
/// `NATS_OTEL_MACROS_DEBUG=1` while building to print the expansion.
///
/// # Compile-time errors
///
/// Subjects are checked against the NATS grammar, at the literal:
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[nats_subscribe("orders..created")] // error: `..` leaves an empty token
/// async fn handler() {}
/// # fn main() {}
/// ```
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[nats_subscribe("ord*.created")] // error: `*` must be a whole token
/// async fn handler() {}
/// # fn main() {}
/// ```
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[nats_subscribe("orders.>.created")] // error: `>` must be the last token
/// async fn handler() {}
/// # fn main() {}
/// ```
///
/// Unknown or repeated options, and a queue group with whitespace:
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[nats_subscribe("orders.*", que = "billing")] // error: unknown option `que`; expected one of …
/// async fn handler() {}
/// # fn main() {}
/// ```
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[nats_subscribe("orders.*", queue = "bill ing")] // error: queue group must not contain whitespace
/// async fn handler() {}
/// # fn main() {}
/// ```
///
/// Handlers must be `async fn`, and every argument an extractor:
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[nats_subscribe("orders.*")]
/// fn handler() {} // error: handlers must be `async fn`
/// # fn main() {}
/// ```
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[nats_subscribe("orders.*")]
/// async fn handler(retries: u32) {} // error: `u32` is not a nats-otel extractor
/// # fn main() {}
/// ```
///
/// An error type must say how it is reported:
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[derive(Debug)]
/// struct Oops;
/// impl std::fmt::Display for Oops {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("oops") }
/// }
/// #[nats_subscribe("orders.*")]
/// async fn handler() -> Result<(), Oops> { Ok(()) } // error: `Oops` cannot be returned as a handler error
/// # fn main() {}
/// ```
#[proc_macro_attribute]
pub fn nats_subscribe(args: TokenStream, item: TokenStream) -> TokenStream {
    expand("nats_subscribe", subscribe::expand(args.into(), item.into()))
}

/// Turns an `async fn` into the handler of a durable JetStream pull consumer,
/// settled from its result: `Ok` acks, `Err` naks (with the backoff delay), a
/// permanent error or a payload that does not decode terms (after publishing to
/// `dead_letter` when set), and the last allowed delivery failing is dead-lettered.
/// Handlers running past half of `ack_wait` send in-progress heartbeats.
///
/// ```
/// use nats_otel_runtime::prelude::*;
///
/// #[derive(Deserialize)]
/// struct Order { id: u64 }
///
/// #[jetstream_consumer(stream = "ORDERS", durable = "billing", filter = "orders.*.created",
///                      max_deliver = 5, backoff = ["1s", "10s", "1m"], dead_letter = "orders.dead")]
/// async fn bill(Json(order): Json<Order>, info: JetStreamInfo) -> Result<(), ServiceError> {
///     tracing::info!(order.id = order.id, delivery = info.delivered, "billing");
///     Ok(())
/// }
/// # fn main() {}
/// ```
///
/// # Options
///
/// | option | default | meaning |
/// |---|---|---|
/// | `stream = "…"` | required | the stream |
/// | `durable = "…"` | required, unless `ordered` | the durable consumer's name |
/// | `ordered = true` | `false` | an ordered consumer, for replay: each instance's own ephemeral consumer, every message once in stream order, one at a time, no acks or redelivery, recreated from the last sequence seen when lost (`JetStreamConsumer::ordered`); `deliver`, `filter`, `trace` and the capture options apply, the others are errors |
/// | `filter = "…"` or `["…", "…"]` | none | filter subjects; one filter may have `{name}` captures, passed to the argument `name` |
/// | `message = Type` | none | a `NatsMessage` type: filter on its pattern (a `filter` must lie within it) and decode into it |
/// | `deliver = "all" \| "new" \| "last" \| "last_per_subject"` | `"all"` | where a new consumer starts |
/// | `ack_wait = "30s"` | server's (30 s) | time to ack before redelivery |
/// | `max_deliver = N` | unlimited | deliveries before giving up (term or dead letter) |
/// | `backoff = ["1s", "10s"]` | none | nak delay per delivery; needs `max_deliver` above its length |
/// | `max_ack_pending = N` | server's (1000) | unacknowledged messages at once |
/// | `concurrency = N` | 32, at most `max_ack_pending` | handlers at once |
/// | `batch = N` | 200, at least `concurrency`, at most `max_ack_pending` | messages per pull; see `JetStreamConsumer::batch` for the trade-off with `ack_wait` |
/// | `batch_size = N` | none | the handler takes `Batch<T>`: up to `N` messages per call, one `process` span per batch linked to each message, each message settled on its own (`BatchOutcome` fails single items); `concurrency` counts batches (default 2, or 1 when two do not fit in `max_ack_pending`) |
/// | `batch_wait = "100ms"` | `"100ms"` | how long a batch waits to fill from its first message; below `ack_wait` and every `backoff` delay |
/// | `ack = "fire" \| "confirmed"` | `"fire"` | wait for the server to confirm settlements |
/// | `create = true \| false` | `true` | create or update the consumer, or bind to an existing one |
/// | `dead_letter = "subject"` | none | where given-up messages are stored, with their headers and trace context; a message is termed only once its letter is stored |
/// | `dead_letter_route = "stream" \| "core"` | `"stream"` | `"core"` publishes letters on core NATS, unconfirmed: a letter nobody receives is lost |
/// | `trace = "parent" \| "link"` | `"parent"` | continue the publisher's trace, or link to it |
/// | `settle = "span" \| "event"` | `"span"` | record settlements as child spans or as events |
/// | `capture_headers = ["x-tenant"]` | none | record these headers' values on the process span, case-insensitive |
/// | `capture_body = N` | off | record the first `N` bytes (1 to 65536) of the payload on the process span |
///
/// # Compile-time errors
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[jetstream_consumer(stream = "ORDERS.v2", durable = "billing")] // error: `.` in a stream name
/// async fn handler() {}
/// # fn main() {}
/// ```
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[jetstream_consumer(stream = "ORDERS", durable = "billing", ack_wait = "30 seconds")] // error: invalid duration
/// async fn handler() {}
/// # fn main() {}
/// ```
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[jetstream_consumer(stream = "ORDERS", durable = "billing", max_deliver = 2, backoff = ["1s", "5s"])]
/// async fn handler() {} // error: 2 backoff delays need `max_deliver` above 2
/// # fn main() {}
/// ```
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[jetstream_consumer(stream = "ORDERS", durable = "billing", max_ack_pending = 10, concurrency = 20)]
/// async fn handler() {} // error: `concurrency = 20` exceeds `max_ack_pending = 10`
/// # fn main() {}
/// ```
///
/// An ordered consumer for replay, and what does not apply to it:
///
/// ```
/// # use nats_otel_runtime::prelude::*;
/// #[jetstream_consumer(stream = "ORDERS", ordered = true, deliver = "all")]
/// async fn rebuild_projection(info: JetStreamInfo, body: Bytes) {
///     tracing::info!(sequence = info.stream_sequence, bytes = body.len(), "replayed");
/// }
/// # fn main() {}
/// ```
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[jetstream_consumer(stream = "ORDERS", ordered = true, max_deliver = 3)]
/// async fn handler() {} // error: `max_deliver` does not apply to an ordered consumer
/// # fn main() {}
/// ```
///
/// # Batch handlers
///
/// ```
/// # use nats_otel_runtime::prelude::*;
/// # #[derive(Deserialize)] struct Order { id: u64 }
/// #[jetstream_consumer(stream = "ORDERS", durable = "warehouse", batch_size = 100, batch_wait = "50ms")]
/// async fn store(orders: Batch<Json<Order>>) -> BatchOutcome<ServiceError> {
///     let mut outcome = BatchOutcome::new();
///     for order in &orders {
///         if order.0.id == 0 {
///             outcome.fail(order.id(), ServiceError::new(422, "order 0")); // this one alone
///         }
///     }
///     outcome // the others are acked
/// }
/// # fn main() {}
/// ```
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[jetstream_consumer(stream = "ORDERS", durable = "warehouse", batch_size = 100)]
/// async fn store(order: Json<String>) {} // error: `Json<String>` reads one message, but this handler takes batches
/// # fn main() {}
/// ```
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[jetstream_consumer(stream = "ORDERS", durable = "warehouse", batch_size = 600, concurrency = 2)]
/// async fn store(orders: Batch<String>) {} // error: 2 batch(es) of `batch_size = 600` exceed `max_ack_pending = 1000`
/// # fn main() {}
/// ```
#[proc_macro_attribute]
pub fn jetstream_consumer(args: TokenStream, item: TokenStream) -> TokenStream {
    expand("jetstream_consumer", consumer::expand(args.into(), item.into()))
}

/// Turns an `async fn` into the handler of a key-value bucket's changes: each
/// put, delete and purge of the keys `key` matches reaches it once, in order,
/// as a [`KvEntry`](../nats_otel_runtime/struct.KvEntry.html) whose value is
/// decoded by its type parameter (`Json<T>`, `String`, `Bytes`, …), in a
/// `process $KV.{bucket}.{key}` span with the key, operation and revision.
///
/// A watch is an ordered consumer on the bucket's stream (`KV_{bucket}`): each
/// service instance gets every change, and a lost consumer is recreated from
/// the last revision seen.
///
/// ```
/// use nats_otel_runtime::prelude::*;
///
/// #[derive(Deserialize)]
/// struct Flag { on: bool }
///
/// #[kv_watch(bucket = "flags", key = "checkout.*", history = "latest")]
/// async fn on_flag(entry: KvEntry<Json<Flag>>) {
///     let on = entry.value.map(|Json(flag)| flag.on);
///     tracing::info!(key = %entry.key, revision = entry.revision, ?on, "flag changed");
/// }
/// # fn main() {}
/// ```
///
/// # Options
///
/// | option | default | meaning |
/// |---|---|---|
/// | `bucket = "…"` | required | the bucket: letters, digits, `-` and `_` |
/// | `key = "…"` | `">"` | the keys watched, with `*` and `>` wildcards; no captures |
/// | `history = "latest" \| "all" \| "updates_only"` | `"latest"` | start with each key's current entry, with every revision kept, or with changes only |
/// | `trace`, `capture_headers`, `capture_body` | | as for `#[jetstream_consumer]` |
///
/// # Compile-time errors
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[kv_watch(bucket = "app.config")] // error: `.` is not allowed in a bucket name
/// async fn handler(entry: KvEntry<Bytes>) {}
/// # fn main() {}
/// ```
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[kv_watch(bucket = "config", key = "tenants.{id}")] // error: a watched key has no captures
/// async fn handler(entry: KvEntry<Bytes>) {}
/// # fn main() {}
/// ```
#[proc_macro_attribute]
pub fn kv_watch(args: TokenStream, item: TokenStream) -> TokenStream {
    expand("kv_watch", kv::expand(args.into(), item.into()))
}

/// Gives a message type its subject template, checked at compile time.
///
/// ```
/// use nats_otel_runtime::prelude::*;
/// use nats_otel_runtime::NatsMessage as _;
///
/// #[derive(Serialize, Deserialize, NatsMessage)]
/// #[nats(subject = "orders.{region}.created", stream = "ORDERS")]
/// struct OrderCreated { region: String, id: u64 }
///
/// assert_eq!(OrderCreated::PATTERN, "orders.*.created");
/// assert_eq!(OrderCreated { region: "eu".into(), id: 1 }.subject().unwrap(), "orders.eu.created");
/// ```
///
/// Each `{capture}` names a field whose type implements `Display`; its value must
/// render as one token (checked when the subject is built). Handlers can take the
/// type directly (decoded with its codec), and `Publisher::publish_message`
/// publishes it to its own subject.
///
/// | option | default | meaning |
/// |---|---|---|
/// | `subject = "orders.{region}.created"` | required | the template: literal tokens and `{field}` captures, no wildcards |
/// | `stream = "ORDERS"` | none | the stream the type is published to (`STREAM`) |
/// | `reply = Quote` | none (an event) | the reply type of a request: `Publisher::request_message` returns it, handlers with `message = Self` must return it; it derives `NatsPayload` |
/// | `codec = "json"` / `"raw"` / `MyCodec` | `"json"` | serde JSON; the payload as it is for a newtype over bytes; or a type implementing `Codec<Self>` |
/// | `crate = "path"` | `::nats_otel_runtime` | where the runtime is |
///
/// A handler may name both `subject` and `message = Type`, to take a narrower
/// subject than the type's pattern; the subject must lie within the pattern:
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[derive(Serialize, Deserialize, NatsMessage)]
/// #[nats(subject = "orders.{region}.created")]
/// struct OrderCreated { region: String }
///
/// #[nats_subscribe(subject = "orders.eu.cancelled", message = OrderCreated)] // error: not covered
/// async fn handler(order: OrderCreated) {}
/// # fn main() {}
/// ```
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[derive(Serialize, Deserialize, NatsMessage)]
/// #[nats(subject = "quotes.get", reply = Quote)]
/// struct QuoteRequest { sku: String }
/// #[derive(Serialize, Deserialize, NatsPayload)]
/// struct Quote { cents: u64 }
///
/// #[nats_subscribe(message = QuoteRequest)]
/// async fn handler(request: QuoteRequest) -> String { String::new() } // error: must return `Quote`
/// # fn main() {}
/// ```
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[derive(Serialize, Deserialize, NatsMessage)]
/// #[nats(subject = "orders.{regoin}.created")] // error: no field `regoin`
/// struct OrderCreated { region: String }
/// # fn main() {}
/// ```
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[derive(Serialize, Deserialize, NatsMessage)]
/// #[nats(subject = "orders.*.created")] // error: wildcards have no place in a publish template
/// struct OrderCreated { region: String }
/// # fn main() {}
/// ```
#[proc_macro_derive(NatsMessage, attributes(nats))]
pub fn derive_nats_message(input: TokenStream) -> TokenStream {
    expand("NatsMessage", message::derive(input.into(), message::Kind::Message))
}

/// Declares a JetStream stream in code: its name and subjects become constants
/// (`NatsStream::NAME`, `SUBJECTS`) and its configuration `NatsStream::config()`.
/// A `#[jetstream_consumer(stream = Type, ..)]` naming the type has each filter
/// checked against the subjects at compile time, and start-up creates or
/// updates the stream (traced) before the consumer binds.
///
/// ```
/// use nats_otel_runtime::prelude::*;
///
/// #[derive(NatsStream)]
/// #[nats_stream(name = "ORDERS", subjects = ["orders.>"], storage = "memory", max_age = "168h", replicas = 1)]
/// struct Orders;
///
/// #[jetstream_consumer(stream = Orders, durable = "billing", filter = "orders.*.placed")]
/// async fn bill(body: String) -> Result<(), ServiceError> { Ok(()) }
/// # fn main() {}
/// ```
///
/// | option | default | meaning |
/// |---|---|---|
/// | `name = "…"` | required | the stream's name |
/// | `subjects = ["…"]` | required | the subjects it captures |
/// | `storage = "file" \| "memory"` | `"file"` | where messages are kept |
/// | `retention = "limits" \| "interest" \| "work_queue"` | `"limits"` | when messages go |
/// | `replicas = N` | 1 | copies in a cluster (1 to 5) |
/// | `max_age = "168h"`, `duplicate_window = "2m"` | server's | age limit, id de-duplication window |
/// | `max_messages = N`, `max_bytes = N` | unlimited | size limits |
/// | `crate = "path"` | `::nats_otel_runtime` | where the runtime is |
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[derive(NatsStream)]
/// #[nats_stream(name = "ORDERS", subjects = ["orders.>"])]
/// struct Orders;
///
/// #[jetstream_consumer(stream = Orders, durable = "refunds", filter = "refunds.>")]
/// async fn refund(body: String) {} // error: `refunds.>` lies outside stream `ORDERS`'s subjects
/// # fn main() {}
/// ```
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[derive(NatsStream)]
/// #[nats_stream(name = "ORDERS.v2", subjects = ["orders.>"])] // error: `.` in a stream name
/// struct Orders;
/// # fn main() {}
/// ```
#[proc_macro_derive(NatsStream, attributes(nats_stream))]
pub fn derive_nats_stream(input: TokenStream) -> TokenStream {
    expand("NatsStream", stream::derive(input.into()))
}

/// A payload with a codec but no subject: the reply type of a request message,
/// say. Such a type can be a handler argument and a handler's return value.
///
/// | option | default | meaning |
/// |---|---|---|
/// | `codec = "json"` | ✓ | serde JSON |
/// | `codec = "raw"` | | the payload as it is, for a newtype over `Bytes` or `Vec<u8>` |
/// | `codec = MyCodec` | | any type implementing `nats_otel_runtime::message::Codec<Self>` |
///
/// ```
/// use nats_otel_runtime::prelude::*;
/// use nats_otel_runtime::NatsPayload as _;
///
/// #[derive(Serialize, Deserialize, NatsPayload)]
/// struct Quote { cents: u64 }
///
/// #[derive(NatsPayload)]
/// #[nats(codec = "raw")]
/// struct Thumbnail(Bytes);
///
/// let raw = Thumbnail(Bytes::from_static(b"\x89PNG")).encode().unwrap();
/// assert_eq!(&raw[..], b"\x89PNG");
/// ```
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[derive(NatsPayload)]
/// #[nats(codec = "raw")] // error: `codec = "raw"` needs a newtype over bytes
/// struct Thumbnail { data: Bytes, width: u32 }
/// # fn main() {}
/// ```
#[proc_macro_derive(NatsPayload, attributes(nats))]
pub fn derive_nats_payload(input: TokenStream) -> TokenStream {
    expand("NatsPayload", message::derive(input.into(), message::Kind::Payload))
}

/// A service name checked at compile time: the literal, when it follows the
/// NATS Services API's rules (ADR-32: letters, digits, `-` and `_`), else a
/// compile error at it. `NatsService::name` checks any name again at start.
///
/// ```
/// # use nats_otel_runtime::{NatsService, service_name, service_version};
/// let service = NatsService::without_connection().name(service_name!("pricing")).version(service_version!("1.2.0"));
/// ```
///
/// ```compile_fail
/// # use nats_otel_runtime::service_name;
/// let name = service_name!("pricing.eu"); // error: `.` is not allowed in a Services API name
/// ```
#[proc_macro]
pub fn service_name(input: TokenStream) -> TokenStream {
    expand("service_name", identity::expand(input.into(), identity::Part::Name))
}

/// A service version checked at compile time: the literal, when it is a
/// Semantic Versioning 2.0 version (as ADR-32 requires), else a compile error
/// at it. `NatsService::version` checks any version again at start.
///
/// ```compile_fail
/// # use nats_otel_runtime::service_version;
/// let version = service_version!("v1.2"); // error: not a semantic version
/// ```
#[proc_macro]
pub fn service_version(input: TokenStream) -> TokenStream {
    expand("service_version", identity::expand(input.into(), identity::Part::Version))
}

/// The one funnel every macro goes through: prints the expansion on request.
fn expand(name: &str, tokens: proc_macro2::TokenStream) -> TokenStream {
    if std::env::var_os("NATS_OTEL_MACROS_DEBUG").is_some() {
        eprintln!("#[{name}] expands to:\n{tokens}\n");
    }
    tokens.into()
}
