//! Validation of JetStream names, queue groups and token values.

use core::fmt;
use core::ops::Range;

use crate::chars::{BadChar, describe_char, first_bad_char};

/// The maximum length in bytes of a stream or consumer name (NATS server's
/// `JSMaxNameLen`).
pub const MAX_NAME_LEN: usize = 255;

/// Why a name or token value was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameErrorKind {
    /// The name is empty. Range: `0..0`.
    Empty,
    /// Whitespace ([`char::is_whitespace`]). Range: the run of whitespace.
    Whitespace,
    /// A character that is not allowed here (a control character, or one
    /// of `.`, `*`, `>`, `/`, `\` depending on what is validated). Range:
    /// that character.
    ForbiddenCharacter(char),
    /// Longer than [`MAX_NAME_LEN`] bytes. Range: from the first character
    /// that does not fit to the end.
    TooLong,
}

/// What was being validated, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameContext {
    Name,
    QueueGroup,
    TokenValue,
}

impl NameContext {
    fn what(self) -> &'static str {
        match self {
            NameContext::Name => "stream or consumer name",
            NameContext::QueueGroup => "queue group",
            NameContext::TokenValue => "subject token value",
        }
    }

    fn forbidden(self) -> &'static [char] {
        match self {
            NameContext::Name => &['.', '*', '>', '/', '\\'],
            NameContext::QueueGroup => &['*', '>'],
            NameContext::TokenValue => &['.', '*', '>'],
        }
    }
}

/// A rejected stream/consumer name, queue group or subject token value.
///
/// ```
/// use nats_otel_rules::{NameErrorKind, validate_name};
///
/// let err = validate_name("orders.eu").unwrap_err();
/// assert_eq!(err.kind, NameErrorKind::ForbiddenCharacter('.'));
/// assert_eq!(err.range, 6..7);
/// assert_eq!(err.message(), "stream or consumer name must not contain `.`");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    /// What is wrong.
    pub kind: NameErrorKind,
    /// Byte range in the input the error is about (`0..0` when empty).
    pub range: Range<usize>,
    context: NameContext,
}

impl NameError {
    /// A lower-case, rustc-style message, e.g.
    /// "queue group must not contain whitespace, found a space".
    pub fn message(&self) -> String {
        let what = self.context.what();
        match &self.kind {
            NameErrorKind::Empty => format!("{what} must not be empty"),
            NameErrorKind::Whitespace => format!("{what} must not contain whitespace"),
            NameErrorKind::ForbiddenCharacter(c) => {
                format!("{what} must not contain {}", describe_char(*c))
            }
            NameErrorKind::TooLong => {
                format!("{what} is too long: {} bytes, at most {MAX_NAME_LEN} are allowed", self.range.end)
            }
        }
    }

    /// A one-line hint on how to fix the name.
    pub fn help(&self) -> &'static str {
        match (self.context, &self.kind) {
            (NameContext::Name, NameErrorKind::Empty) => "use a non-empty name, e.g. `ORDERS`",
            (NameContext::Name, NameErrorKind::TooLong) => "shorten the name to at most 255 bytes",
            (NameContext::Name, _) => {
                "use letters, digits, `-` and `_`, e.g. `ORDERS_EU`; `.`, `*`, `>`, `/`, `\\`, whitespace and control characters are not allowed"
            }
            (NameContext::QueueGroup, NameErrorKind::Empty) => {
                "use a non-empty queue group name, e.g. `order-workers`"
            }
            (NameContext::QueueGroup, _) => {
                "remove whitespace, control characters, `*` and `>`, e.g. `order-workers`"
            }
            (NameContext::TokenValue, NameErrorKind::Empty) => {
                "a value rendered into a subject token must not be empty"
            }
            (NameContext::TokenValue, _) => {
                "a value rendered into a subject token must not contain `.`, `*`, `>`, whitespace or control characters; sanitize it first (e.g. replace `.` with `_`)"
            }
        }
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())?;
        if !self.range.is_empty() {
            write!(f, " (at bytes {}..{})", self.range.start, self.range.end)?;
        }
        Ok(())
    }
}

impl std::error::Error for NameError {}

fn validate(value: &str, context: NameContext) -> Result<(), NameError> {
    let fail = |kind, range| Err(NameError { kind, range, context });
    if value.is_empty() {
        return fail(NameErrorKind::Empty, 0..0);
    }
    let forbidden = context.forbidden();
    // First problem in reading order: whitespace, control or forbidden char.
    let bad = first_bad_char(value);
    let bad_start = match &bad {
        Some(BadChar::Whitespace(r) | BadChar::Control(r, _)) => r.start,
        None => value.len(),
    };
    let punct = value.get(..bad_start).unwrap_or("").char_indices().find(|(_, c)| forbidden.contains(c));
    if let Some((i, c)) = punct {
        return fail(NameErrorKind::ForbiddenCharacter(c), i..i + c.len_utf8());
    }
    match bad {
        Some(BadChar::Whitespace(r)) => return fail(NameErrorKind::Whitespace, r),
        Some(BadChar::Control(r, c)) => return fail(NameErrorKind::ForbiddenCharacter(c), r),
        None => {}
    }
    if context == NameContext::Name && value.len() > MAX_NAME_LEN {
        let start = value
            .char_indices()
            .find(|(i, c)| i + c.len_utf8() > MAX_NAME_LEN)
            .map_or(MAX_NAME_LEN, |(i, _)| i);
        return fail(NameErrorKind::TooLong, start..value.len());
    }
    Ok(())
}

/// Validates a JetStream stream or consumer (durable) name.
///
/// NATS rules: non-empty, no whitespace or control characters, none of
/// `.`, `*`, `>`, `/`, `\` (names end up in subjects and file paths), and
/// at most [`MAX_NAME_LEN`] (255) bytes. Character problems are reported
/// before length.
///
/// ```
/// use nats_otel_rules::{NameErrorKind, validate_name};
///
/// assert!(validate_name("ORDERS").is_ok());
/// assert!(validate_name("order-processor_v2").is_ok());
/// assert_eq!(validate_name("").unwrap_err().kind, NameErrorKind::Empty);
/// assert_eq!(validate_name("a/b").unwrap_err().kind, NameErrorKind::ForbiddenCharacter('/'));
/// assert_eq!(validate_name(&"x".repeat(256)).unwrap_err().kind, NameErrorKind::TooLong);
/// ```
pub fn validate_name(name: &str) -> Result<(), NameError> {
    validate(name, NameContext::Name)
}

/// Validates a queue group name.
///
/// Non-empty, no whitespace or control characters, no `*` or `>` (a
/// queue group is not a pattern). Dots and other characters are allowed,
/// as nats-server accepts them.
///
/// ```
/// use nats_otel_rules::{NameErrorKind, validate_queue_group};
///
/// assert!(validate_queue_group("orders.workers").is_ok());
/// let err = validate_queue_group("order workers").unwrap_err();
/// assert_eq!(err.kind, NameErrorKind::Whitespace);
/// assert_eq!(err.range, 5..6);
/// ```
pub fn validate_queue_group(name: &str) -> Result<(), NameError> {
    validate(name, NameContext::QueueGroup)
}

/// Validates a value rendered into one subject token at run time (e.g. a
/// struct field filling the capture `{region}`).
///
/// Non-empty, no `.`, `*`, `>`, whitespace or control characters, so the
/// rendered subject has the intended number of tokens and no wildcards.
/// Braces and other characters are allowed (NATS treats them as data).
///
/// ```
/// use nats_otel_rules::{NameErrorKind, validate_token_value};
///
/// assert!(validate_token_value("eu-west-1").is_ok());
/// assert_eq!(
///     validate_token_value("eu.west").unwrap_err().kind,
///     NameErrorKind::ForbiddenCharacter('.')
/// );
/// ```
pub fn validate_token_value(value: &str) -> Result<(), NameError> {
    validate(value, NameContext::TokenValue)
}
