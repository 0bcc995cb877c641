//! The typed model of `#[jetstream_consumer(...)]`: one field per option, each
//! value typed and spanned at what the user wrote; an option that was left
//! out, or did not parse, is `None`.

use proc_macro2::Span;
use syn::LitStr;

use crate::args::Choice;
use crate::duration::Duration;
use crate::handler::options::HandlerOptions;
use crate::handler::subject::HandlerSubject;
use crate::spanned::Spanned;

/// `batch_wait` when only `batch_size` is given.
pub(crate) const DEFAULT_BATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// A durable JetStream pull consumer handler.
pub(crate) struct Consumer {
    /// `stream = "ORDERS"`, required.
    pub(crate) stream: Option<StreamRef>,
    /// `durable = "billing"`, required.
    pub(crate) durable: Option<LitStr>,
    /// `ordered = true`, where it was written: an ordered consumer (no durable,
    /// no acks, one message at a time).
    pub(crate) ordered: Option<Span>,
    /// `filter = "…"` or `["…", "…"]`.
    pub(crate) filters: Vec<HandlerSubject>,
    pub(crate) deliver: Option<Spanned<Deliver>>,
    pub(crate) ack_wait: Option<Spanned<Duration>>,
    /// An `i64`, as the runtime takes it.
    pub(crate) max_deliver: Option<Spanned<i64>>,
    pub(crate) backoff: Option<Backoff>,
    /// An `i64`, as the runtime takes it.
    pub(crate) max_ack_pending: Option<Spanned<i64>>,
    pub(crate) concurrency: Option<Spanned<usize>>,
    pub(crate) batch: Option<Spanned<usize>>,
    /// `batch_size = 100`: the handler takes batches of up to this many messages.
    pub(crate) batch_size: Option<Spanned<usize>>,
    /// `batch_wait = "100ms"`: how long a batch waits to fill.
    pub(crate) batch_wait: Option<Spanned<Duration>>,
    pub(crate) ack: Option<Spanned<AckMode>>,
    pub(crate) create: Option<Spanned<bool>>,
    /// `dead_letter = "subject"`.
    pub(crate) dead_letter: Option<LitStr>,
    pub(crate) dead_letter_route: Option<Spanned<DeadLetterRoute>>,
    pub(crate) settle: Option<Spanned<SettleRecord>>,
    /// `message`, `trace`, the span capture and `crate`.
    pub(crate) options: HandlerOptions,
}

/// `backoff = ["1s", "10s"]`: the nak delay of each delivery.
/// The stream, by name or as a type deriving `NatsStream` (whose subjects the
/// filters are checked against at compile time).
pub(crate) enum StreamRef {
    Name(LitStr),
    Declared(syn::Path),
}

pub(crate) struct Backoff {
    /// The `backoff` key: errors about the list as a whole point there.
    pub(crate) span: Span,
    pub(crate) delays: Vec<Spanned<Duration>>,
}

/// `deliver`: where a new consumer starts. The runtime's `Deliver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deliver {
    All,
    New,
    Last,
    LastPerSubject,
}

impl Choice for Deliver {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("all", Deliver::All),
        ("new", Deliver::New),
        ("last", Deliver::Last),
        ("last_per_subject", Deliver::LastPerSubject),
    ];
}

/// `ack`: whether settlements wait for the server's confirmation. The
/// runtime's `AckMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckMode {
    Fire,
    Confirmed,
}

impl Choice for AckMode {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("fire", AckMode::Fire), ("confirmed", AckMode::Confirmed)];
}

/// `dead_letter_route`: how dead letters are published. The runtime's
/// `DeadLetterRoute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeadLetterRoute {
    Stream,
    Core,
}

impl Choice for DeadLetterRoute {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("stream", DeadLetterRoute::Stream), ("core", DeadLetterRoute::Core)];
}

/// `settle`: settlements as child spans or as events. The runtime's
/// `SettleRecord`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SettleRecord {
    Span,
    Event,
}

impl Choice for SettleRecord {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("span", SettleRecord::Span), ("event", SettleRecord::Event)];
}
