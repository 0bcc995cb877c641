//! Where and how a handler subscribes.

use std::borrow::Cow;

use super::Rejected;

/// Default limit of handlers running at once for one subscription.
pub const DEFAULT_CONCURRENCY: usize = 64;

/// How a `process` span relates to the context the publisher sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TraceMode {
    /// The publisher's span is the parent: one trace from publish to processing.
    #[default]
    Parent,
    /// A new trace per message, linked to the publisher's span: for long-delayed
    /// or replayed messages, where one trace would span hours.
    Link,
}

/// A subscription: subject, optional queue group and options.
///
/// `#[nats_subscribe]` builds one from its arguments; without the macro, pass one to
/// [`NatsService::subscribe_with`](crate::NatsService::subscribe_with).
///
/// ```
/// use nats_otel_runtime::{Subscription, TraceMode};
/// let orders = Subscription::new("orders.*").queue("billing").concurrency(8).trace(TraceMode::Link);
/// assert_eq!(orders.subject(), "orders.*");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub(crate) subject: Cow<'static, str>,
    pub(crate) template: Option<Cow<'static, str>>,
    pub(crate) queue: Option<Cow<'static, str>>,
    pub(crate) concurrency: usize,
    pub(crate) trace: TraceMode,
    pub(crate) name: Option<Cow<'static, str>>,
    /// Tokens of the service's subject prefix at the front of `subject`.
    pub(crate) prefix_tokens: usize,
    pub(crate) capture: crate::endpoint::capture::CaptureConfig,
}

impl Subscription {
    /// A subscription to `subject` (wildcards allowed), with default options.
    pub fn new(subject: impl Into<Cow<'static, str>>) -> Self {
        Self {
            subject: subject.into(),
            template: None,
            queue: None,
            concurrency: DEFAULT_CONCURRENCY,
            trace: TraceMode::Parent,
            name: None,
            prefix_tokens: 0,
            capture: crate::endpoint::capture::CaptureConfig::default(),
        }
    }

    /// Puts the service's subject prefix in front of the subject and template.
    pub(crate) fn apply_prefix(&mut self, prefix: &crate::endpoint::prefix::SubjectPrefix) {
        self.subject = prefix.apply(&self.subject).into();
        if let Some(template) = &mut self.template {
            *template = prefix.apply(template).into();
        }
        self.prefix_tokens = prefix.tokens();
    }

    /// The template with `{captures}` the subject was derived from
    /// (`orders.{region}.created` for `orders.*.created`): spans are named after it
    /// and record it as `messaging.destination.template`. `#[nats_subscribe]` sets it
    /// for subjects with captures.
    #[must_use]
    pub fn template(mut self, template: impl Into<Cow<'static, str>>) -> Self {
        self.template = Some(template.into());
        self
    }

    /// Joins a queue group: each message goes to one member of the group.
    #[must_use]
    pub fn queue(mut self, group: impl Into<Cow<'static, str>>) -> Self {
        self.queue = Some(group.into());
        self
    }

    /// How many handlers may run at once (default [`DEFAULT_CONCURRENCY`]); `1`
    /// processes messages one by one, in order.
    ///
    /// The handlers of one subscription run concurrently on that subscription's
    /// task (like `for_each_concurrent`), not one task per message: much cheaper
    /// per message, and I/O-bound handlers overlap fully. Move CPU-heavy work to
    /// `tokio::task::spawn_blocking` so it does not hold up its siblings.
    #[must_use]
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = limit;
        self
    }

    /// Parent or link to the publisher's context (default [`TraceMode::Parent`]).
    #[must_use]
    pub fn trace(mut self, mode: TraceMode) -> Self {
        self.trace = mode;
        self
    }

    /// The handler's name in errors and logs (the macros use the function's path).
    #[must_use]
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Records the values of these headers on each `process` span, as
    /// `messaging.nats.message.header.<lower-cased name>` (a string array).
    ///
    /// Names match case-insensitively; headers not listed are never recorded.
    /// Nothing is captured by default: list only headers that carry no secrets or
    /// personal data. See [`capture`](crate::capture).
    ///
    /// ```
    /// use nats_otel_runtime::Subscription;
    /// let orders = Subscription::new("orders.*").capture_headers(["x-tenant", "Nats-Msg-Id"]);
    /// ```
    #[must_use]
    pub fn capture_headers<I>(mut self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Cow<'static, str>>,
    {
        self.capture.headers.extend(names.into_iter().map(Into::into));
        self
    }

    /// Records at most the first `max_bytes` of each payload on its `process` span
    /// (`messaging.nats.message.body`; text cut on a character boundary, base64
    /// when the payload is not UTF-8), with `messaging.nats.message.body.truncated`.
    ///
    /// At most [`MAX_BODY_CAPTURE`](crate::capture::MAX_BODY_CAPTURE) bytes; off by
    /// default. See [`capture`](crate::capture).
    ///
    /// ```
    /// use nats_otel_runtime::Subscription;
    /// let orders = Subscription::new("orders.*").capture_body(256);
    /// ```
    #[must_use]
    pub fn capture_body(mut self, max_bytes: usize) -> Self {
        self.capture.body = Some(max_bytes);
        self
    }

    /// The subject.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The subject template, when one was set.
    pub fn subject_template(&self) -> Option<&str> {
        self.template.as_deref()
    }

    /// The queue group.
    pub fn queue_group(&self) -> Option<&str> {
        self.queue.as_deref()
    }

    /// The concurrency limit.
    pub fn concurrency_limit(&self) -> usize {
        self.concurrency
    }

    /// The trace mode.
    pub fn trace_mode(&self) -> TraceMode {
        self.trace
    }

    /// Checks the subject and queue group against the NATS grammar, and the
    /// options against the rule book.
    pub(crate) fn validate(&self) -> Result<(), Rejected> {
        use nats_otel_rules::{Usage, validate, validate_queue_group};
        validate(&self.subject, Usage::Subscribe).map_err(|e| Rejected::subject(e.to_string()))?;
        if let Some(queue) = &self.queue {
            validate_queue_group(queue)
                .map_err(|e| Rejected::subject(format!("queue group `{queue}`: {e}")))?;
        }
        nats_otel_rules::validate_positive(nats_otel_rules::Setting::Concurrency, self.concurrency as u64)
            .map_err(|e| Rejected::options(e.to_string()))?;
        self.capture.validate().map_err(Rejected::options)
    }
}

/// What spans call a destination: `(name, template)`. The template is the one
/// given, else the subject itself when it has wildcards.
pub(crate) fn destination_names(subject: &str, template: Option<&str>) -> (String, Option<Box<str>>) {
    match template {
        Some(template) => (template.to_owned(), Some(template.into())),
        None => (subject.to_owned(), has_wildcards(subject).then(|| subject.into())),
    }
}

/// Whether a subscription subject or filter has wildcards, by the shared grammar
/// (an invalid subject has none: it is rejected before it is used).
pub(crate) fn has_wildcards(subject: &str) -> bool {
    nats_otel_rules::Subject::parse(subject, nats_otel_rules::Usage::Subscribe)
        .is_ok_and(|s| s.has_wildcards())
}
