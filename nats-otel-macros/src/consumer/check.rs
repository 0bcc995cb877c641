//! Check: the rules on a [`Consumer`], from the rule book the runtime checks
//! too (`nats_otel_rules`), and the one rule only a macro has (captures need a
//! single filter). Every error is reported, at the value it is about.

use nats_otel_rules::{Setting, SettingError, Usage};
use proc_macro2::Span;
use syn::LitStr;

use crate::consumer::model::{Consumer, DEFAULT_BATCH_WAIT, StreamRef};
use crate::diagnostics::{Diagnostics, subspan};

impl Consumer {
    pub(crate) fn check(&self, diagnostics: &mut Diagnostics) {
        let stream = match &self.stream {
            Some(StreamRef::Name(lit)) => Some(lit),
            _ => None,
        };
        for (key, name) in [("stream", stream), ("durable", self.durable.as_ref())] {
            if let Some(lit) = name
                && let Err(e) = nats_otel_rules::validate_name(&lit.value())
            {
                diagnostics.error_with_help(
                    subspan(lit, e.range.clone()),
                    format!("{key}: {}", e.message()),
                    e.help(),
                );
            }
        }
        if let Some(lit) = &self.dead_letter {
            check_publish_subject(lit, diagnostics);
        }
        if self.filters.len() > 1 {
            for capture in self.filters.iter().flat_map(|f| &f.captures) {
                diagnostics.error_with_help(
                    capture.span,
                    "captures need a single `filter`",
                    "use one filter with captures, or `*` in each of several filters",
                );
            }
        }
        let counts = [
            (Setting::MaxDeliver, self.max_deliver.map(|n| non_negative(n.value))),
            (Setting::MaxAckPending, self.max_ack_pending.map(|n| non_negative(n.value))),
            (Setting::Concurrency, self.concurrency.map(|n| n.value as u64)),
            (Setting::Batch, self.batch.map(|n| n.value as u64)),
            (Setting::BatchSize, self.batch_size.map(|n| n.value as u64)),
        ];
        for (setting, value) in counts {
            if let Some(value) = value {
                self.report(nats_otel_rules::validate_positive(setting, value), diagnostics);
            }
        }
        if let (Some(backoff), Some(max_deliver)) = (&self.backoff, &self.max_deliver) {
            let rule = nats_otel_rules::validate_backoff_against_max_deliver(
                backoff.delays.len(),
                max_deliver.value,
            );
            self.report(rule, diagnostics);
        }
        if let (Some(concurrency), Some(max_ack_pending)) = (&self.concurrency, &self.max_ack_pending) {
            let rule = nats_otel_rules::validate_concurrency_against_max_ack_pending(
                concurrency.value,
                max_ack_pending.value,
            );
            self.report(rule, diagnostics);
        }
        if self.ordered.is_some() {
            self.check_ordered(diagnostics);
        }
        self.check_batches(diagnostics);
        self.options.check(diagnostics);
    }

    /// An ordered consumer has no durable name, no acks and no redelivery, and
    /// handles one message at a time: the options about them are errors, each
    /// at the option.
    fn check_ordered(&self, diagnostics: &mut Diagnostics) {
        let given = [
            ("durable", self.durable.as_ref().map(LitStr::span)),
            ("ack_wait", self.ack_wait.map(|d| d.span)),
            ("max_deliver", self.max_deliver.map(|n| n.span)),
            ("backoff", self.backoff.as_ref().map(|b| b.span)),
            ("max_ack_pending", self.max_ack_pending.map(|n| n.span)),
            ("concurrency", self.concurrency.map(|n| n.span)),
            ("ack", self.ack.map(|a| a.span)),
            ("create", self.create.map(|c| c.span)),
            ("dead_letter", self.dead_letter.as_ref().map(LitStr::span)),
            ("dead_letter_route", self.dead_letter_route.map(|r| r.span)),
            ("settle", self.settle.map(|s| s.span)),
            ("batch_size", self.batch_size.map(|n| n.span)),
            ("batch_wait", self.batch_wait.map(|d| d.span)),
        ];
        for (option, span) in given {
            if let Some(span) = span {
                diagnostics.error_with_help(
                    span,
                    format!("`{option}` does not apply to an ordered consumer"),
                    format!(
                        "an ordered consumer is each instance's own, with no acks and no redelivery, \
                         one message at a time: remove `{option}` (or `ordered = true`, for a durable consumer)"
                    ),
                );
            }
        }
    }

    /// A batch handler's options: batches in flight within `max_ack_pending`,
    /// a wait below `ack_wait`, and no captures (a batch's messages have
    /// different subjects).
    fn check_batches(&self, diagnostics: &mut Diagnostics) {
        let Some(batch_size) = self.batch_size else {
            if let Some(wait) = self.batch_wait {
                diagnostics.error_with_help(
                    wait.span,
                    "`batch_wait` needs `batch_size`",
                    "add `batch_size = 100` for a handler that takes `Batch<T>`, or remove `batch_wait`",
                );
            }
            return;
        };
        if batch_size.value > 0 {
            let concurrency = self.concurrency.map_or(1, |n| n.value);
            let max_ack_pending = self.max_ack_pending.map(|n| n.value);
            let rule = nats_otel_rules::validate_batches_against_max_ack_pending(
                batch_size.value,
                concurrency,
                max_ack_pending,
            );
            self.report(rule, diagnostics);
        }
        let wait = self.batch_wait.map_or(DEFAULT_BATCH_WAIT, |w| w.value.as_std());
        let ack_wait = self.ack_wait.map(|d| d.value.as_std());
        let backoff: Vec<_> = self.backoff.iter().flat_map(|b| &b.delays).map(|d| d.value.as_std()).collect();
        if let Err(e) = nats_otel_rules::validate_batch_wait(wait, ack_wait, &backoff) {
            let span = self.batch_wait.map_or(batch_size.span, |w| w.span);
            diagnostics.error_with_help(span, e.message(), e.help());
        }
        for capture in self.filters.iter().flat_map(|f| &f.captures) {
            diagnostics.error_with_help(
                capture.span,
                "a batch handler cannot take subject captures: its messages have different subjects",
                "use `*` here, and read each message's subject from its item: `item.subject()`",
            );
        }
    }

    /// Reports a rule-book error at the option it blames.
    fn report(&self, rule: Result<(), SettingError>, diagnostics: &mut Diagnostics) {
        if let Err(e) = rule {
            let span = self.span_of(e.setting).unwrap_or_else(Span::call_site);
            diagnostics.error_with_help(span, e.message(), e.help());
        }
    }

    /// Where the user wrote `setting`.
    fn span_of(&self, setting: Setting) -> Option<Span> {
        match setting {
            Setting::Concurrency => self.concurrency.map(|n| n.span),
            Setting::Batch => self.batch.map(|n| n.span),
            Setting::MaxDeliver => self.max_deliver.map(|n| n.span),
            Setting::MaxAckPending => self.max_ack_pending.map(|n| n.span),
            Setting::Backoff => self.backoff.as_ref().map(|b| b.span),
            Setting::CaptureBody => self.options.span_capture.body.map(|n| n.span),
            Setting::BatchSize => self.batch_size.map(|n| n.span),
            Setting::BatchWait => self.batch_wait.map(|d| d.span),
            _ => None,
        }
    }
}

/// An integer literal is never negative (a `-` makes it an expression), but
/// should one get here, "must be at least 1" is the right error for it.
fn non_negative(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A subject messages are published to: no wildcards, no captures.
fn check_publish_subject(lit: &LitStr, diagnostics: &mut Diagnostics) {
    if let Err(e) = nats_otel_rules::validate(&lit.value(), Usage::Publish) {
        diagnostics.error_with_help(subspan(lit, e.range.clone()), e.message(), e.help());
    }
}
