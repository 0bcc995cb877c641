//! The rules nats-otel checks twice, once at compile time and once at run
//! time, written once and without dependencies.
//!
//! One implementation shared by the `nats-otel` proc macros (compile time:
//! errors carry byte ranges so they can be spanned at the exact part of a
//! string literal) and the runtime (run time: validation, allocation-free
//! matching, capture extraction), so the two never drift:
//!
//! | rule | functions | error |
//! |---|---|---|
//! | the subject grammar | [`Subject::parse`], [`validate`], [`matches`](fn@matches), [`covers`] | [`SubjectError`] |
//! | stream, consumer and queue group names, token values | [`validate_name`], [`validate_queue_group`], [`validate_token_value`] | [`NameError`] |
//! | `capture_headers` names | [`validate_header_name`], [`capture_header_errors`], [`validate_capture_headers`] | [`HeaderNameError`] |
//! | `capture_body` cap | [`validate_body_capture`], [`MAX_BODY_CAPTURE`] | [`SettingError`] |
//! | counts of at least 1 | [`validate_positive`] | [`SettingError`] |
//! | `backoff` vs `max_deliver` | [`validate_backoff_against_max_deliver`] | [`SettingError`] |
//! | Services API names and versions (ADR-32) | [`validate_service_name`], [`validate_service_version`] | [`ServiceRuleError`] |
//! | `concurrency` vs `max_ack_pending` | [`validate_concurrency_against_max_ack_pending`] | [`SettingError`] |
//!
//! Every error has `message()` (lower-case, rustc style) and `help()` (how to
//! fix it). Errors about a string carry a byte `range` into it; a
//! [`SettingError`] is about a number, so it names the [`Setting`] to point at.
//!
//! # Grammar
//!
//! A subject is a non-empty sequence of *tokens* separated by `.`:
//!
//! - every token is non-empty: no leading, trailing or doubled `.`;
//! - no whitespace anywhere (anything [`char::is_whitespace`]: space, tab,
//!   `\r`, `\n`, …) and no control characters (U+0000–U+001F, U+007F,
//!   U+0080–U+009F);
//! - `*` is a wildcard matching exactly one token; it must be a whole token;
//! - `>` is a wildcard matching one or more trailing tokens; it must be a
//!   whole token and the last one;
//! - `*` or `>` inside a longer token (`ord*`, `*x`, `a>b`, `>x`) is a
//!   *partial wildcard* and an error;
//! - `{name}` is a *capture*: it must be a whole token, `name` is an ASCII
//!   identifier (`[A-Za-z_][A-Za-z0-9_]*`), and it matches exactly one
//!   token, like `*`. Braces anywhere else, unclosed braces and `{}` are
//!   errors, and so is the same name twice.
//!
//! Everything else is a literal token (UTF-8 is fine: `städte.köln`).
//!
//! # Usages
//!
//! What is allowed depends on what the subject is for ([`Usage`]):
//!
//! | usage                      | `*` / `>` | `{capture}` | example                   |
//! |----------------------------|-----------|-------------|---------------------------|
//! | [`Usage::Publish`]         | no        | no          | `orders.eu.created`       |
//! | [`Usage::Subscribe`]       | yes       | no          | `orders.*.created`        |
//! | [`Usage::Template`]        | yes       | yes         | `orders.{region}.*`       |
//! | [`Usage::PublishTemplate`] | no        | yes         | `orders.{region}.created` |
//!
//! A [`Usage::Template`] must not combine `>` with captures
//! ([`ErrorKind::TailWithCapture`]): captures are extracted by token index,
//! which should not depend on a variable-length tail.
//!
//! ```
//! use nats_otel_rules::{ErrorKind, Subject, Token, Usage};
//!
//! // A message type subject with a capture filled from a field at run time.
//! let msg = Subject::parse("orders.{region}.created", Usage::PublishTemplate)?;
//! assert_eq!(msg.pattern(), "orders.*.created");
//! assert_eq!(msg.segments()[1].token, Token::Capture("region"));
//! assert_eq!(msg.segments()[1].range, 7..15);
//!
//! // A handler subject.
//! let handler = Subject::parse("orders.>", Usage::Subscribe)?;
//! assert!(handler.covers(&msg));
//! assert!(handler.is_match("orders.eu.created"));
//!
//! // Errors carry a kind, a byte range, a message and a help text.
//! let err = Subject::parse("orders.*.created", Usage::Publish).unwrap_err();
//! assert_eq!(err.kind, ErrorKind::WildcardNotAllowed);
//! assert_eq!(err.range, 7..8);
//! assert_eq!(err.message(), "wildcard `*` is not allowed in a publish subject");
//! # Ok::<(), nats_otel_rules::SubjectError>(())
//! ```
//!
//! # Matching at run time
//!
//! [`matches`](fn@matches) checks a concrete subject against a pattern string without
//! allocating; [`Subject::is_match`] does the same for a parsed pattern.
//! [`Subject::capture_index`] and [`token_at`] extract capture values:
//!
//! ```
//! use nats_otel_rules::{Subject, Usage, matches, token_at};
//!
//! assert!(matches("orders.{region}.created", "orders.eu.created"));
//! assert!(matches("orders.>", "orders.eu.created"));
//! assert!(!matches("orders.>", "orders"));
//!
//! let handler = Subject::parse("orders.{region}.created", Usage::Template)?;
//! let subject = "orders.eu.created";
//! if handler.is_match(subject) {
//!     let i = handler.capture_index("region").unwrap();
//!     assert_eq!(token_at(subject, i), Some("eu"));
//! }
//! # Ok::<(), nats_otel_rules::SubjectError>(())
//! ```
//!
//! # Names
//!
//! [`validate_name`] (JetStream stream and consumer names),
//! [`validate_queue_group`] and [`validate_token_value`] (values rendered
//! into a capture token) report a [`NameError`] with a byte range.
//!
//! ```
//! use nats_otel_rules::{NameErrorKind, validate_name, validate_token_value};
//!
//! assert!(validate_name("ORDERS").is_ok());
//! assert_eq!(validate_name("ORDERS.EU").unwrap_err().range, 6..7);
//! assert_eq!(
//!     validate_token_value("a b").unwrap_err().kind,
//!     NameErrorKind::Whitespace
//! );
//! ```
//!
//! # Span capture and consumer settings
//!
//! The options `capture_headers`, `capture_body`, `concurrency`, `batch`,
//! `max_deliver`, `max_ack_pending` and `backoff` of the macros, and the
//! builder methods of the same names.
//!
//! ```
//! use nats_otel_rules::{
//!     Setting, capture_header_errors, validate_backoff_against_max_deliver, validate_positive,
//! };
//!
//! let errors: Vec<_> = capture_header_errors(&["x-tenant", "X-Tenant"]).collect();
//! assert_eq!(errors[0].message(), "header `X-Tenant` is listed twice");
//! assert_eq!(errors[0].index, 1);
//!
//! let err = validate_backoff_against_max_deliver(3, 3).unwrap_err();
//! assert_eq!(err.setting, Setting::Backoff);
//! assert!(validate_positive(Setting::Batch, 0).is_err());
//! ```

#![warn(missing_docs)]

pub use core::ops::Range;

mod chars;
mod error;
mod matching;
mod name;
mod service;
mod setting;
mod span_capture;
mod subject;

pub use error::{ErrorKind, SubjectError};
pub use matching::{covers, matches, token_at};
pub use name::{
    MAX_NAME_LEN, NameError, NameErrorKind, validate_name, validate_queue_group, validate_token_value,
};
pub use service::{ServiceRuleError, ServiceRuleKind, validate_service_name, validate_service_version};
pub use setting::{
    SERVER_DEFAULT_MAX_ACK_PENDING, Setting, SettingError, SettingErrorKind,
    validate_backoff_against_max_deliver, validate_batch_wait, validate_batches_against_max_ack_pending,
    validate_concurrency_against_max_ack_pending, validate_positive,
};
pub use span_capture::{
    HeaderNameError, HeaderNameErrorKind, MAX_BODY_CAPTURE, capture_header_errors, validate_body_capture,
    validate_capture_headers, validate_header_name,
};
pub use subject::{Segment, Subject, Token, Usage, validate};

#[cfg(test)]
mod tests;
