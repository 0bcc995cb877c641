//! Subject errors with byte ranges, messages and help texts.

use core::fmt;
use core::ops::Range;

use crate::chars::describe_char;
use crate::subject::Usage;

/// Why a subject was rejected by [`Subject::parse`](crate::Subject::parse).
///
/// ```
/// use nats_otel_rules::{ErrorKind, Subject, Usage};
///
/// let err = Subject::parse("orders..created", Usage::Publish).unwrap_err();
/// assert_eq!(err.kind, ErrorKind::EmptyToken);
/// assert_eq!(err.range, 6..8); // the `..`
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The subject is the empty string. Range: `0..0`.
    Empty,
    /// A token is empty (leading, trailing or doubled `.`). Range: the `.`
    /// separator(s) next to the empty token: `0..1` for a leading `.`,
    /// the two bytes of `..`, the last byte for a trailing `.`.
    EmptyToken,
    /// Whitespace (anything [`char::is_whitespace`], including tab, `\r`
    /// and `\n`). Range: the run of consecutive whitespace characters.
    Whitespace,
    /// A control character that is not whitespace (U+0000–U+001F, U+007F
    /// and U+0080–U+009F). Range: that character.
    ControlCharacter,
    /// `*` or `>` inside a longer token, e.g. `ord*`. Range: the token.
    PartialWildcard,
    /// `>` that is not the last token. Range: the `>`.
    TailNotLast,
    /// `*` or `>` where the [`Usage`] forbids wildcards. Range: the wildcard.
    WildcardNotAllowed,
    /// `{name}` where the [`Usage`] forbids captures. Range: the capture.
    CaptureNotAllowed,
    /// Braces that do not form a whole-token capture `{name}` with an ASCII
    /// identifier name: `x{a}`, `{a`, `{}`, `{1a}`, `}`. Range: the token.
    InvalidCapture,
    /// The same capture name twice. Range: the second occurrence.
    DuplicateCapture(String),
    /// A template with both `>` and a capture. Range: the `>`.
    TailWithCapture,
}

/// A rejected subject: what is wrong and where.
///
/// `range` is a byte range into the parsed input (always on `char`
/// boundaries), so a proc macro can point at the exact part of a string
/// literal. [`message`](Self::message) and [`help`](Self::help) give
/// rustc-style texts.
///
/// ```
/// use nats_otel_rules::{ErrorKind, Subject, Usage};
///
/// let err = Subject::parse("orders.ord*", Usage::Subscribe).unwrap_err();
/// assert_eq!(err.kind, ErrorKind::PartialWildcard);
/// assert_eq!(err.range, 7..11);
/// assert_eq!(err.message(), "`ord*` is not a valid token: `*` must be a whole token");
/// assert_eq!(err.help(), "use `*` for one whole token or `>` for the rest, e.g. `orders.*`");
/// assert_eq!(
///     err.to_string(),
///     "`ord*` is not a valid token: `*` must be a whole token (at bytes 7..11 of `orders.ord*`)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectError {
    /// What is wrong.
    pub kind: ErrorKind,
    /// Byte range in the input the error is about (the whole input when it
    /// is about all of it, e.g. `0..0` for [`ErrorKind::Empty`]).
    pub range: Range<usize>,
    /// The whole input, for messages.
    input: String,
    /// The usage the input was parsed for, for messages.
    usage: Usage,
}

impl SubjectError {
    pub(crate) fn new(kind: ErrorKind, range: Range<usize>, input: &str, usage: Usage) -> Self {
        SubjectError { kind, range, input: input.to_owned(), usage }
    }

    /// The offending part of the input (`&input[range]`).
    pub fn snippet(&self) -> &str {
        self.input.get(self.range.clone()).unwrap_or("")
    }

    /// The whole input that was rejected.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// The [`Usage`] the input was parsed for.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// A lower-case, rustc-style message naming the offending part, e.g.
    /// "`ord*` is not a valid token: `*` must be a whole token".
    pub fn message(&self) -> String {
        let s = self.snippet();
        match &self.kind {
            ErrorKind::Empty => "subject is empty".to_owned(),
            ErrorKind::EmptyToken => {
                if self.range.start == 0 {
                    "subject must not start with `.`: tokens must not be empty".to_owned()
                } else if self.range.end == self.input.len() && s == "." {
                    "subject must not end with `.`: tokens must not be empty".to_owned()
                } else {
                    format!("`{s}` leaves an empty token: tokens must not be empty")
                }
            }
            ErrorKind::Whitespace => {
                let c = s.chars().next().unwrap_or(' ');
                format!("subject must not contain whitespace, found {}", describe_char(c))
            }
            ErrorKind::ControlCharacter => {
                let c = s.chars().next().unwrap_or('\0');
                format!("subject must not contain control character {}", describe_char(c))
            }
            ErrorKind::PartialWildcard => {
                let w = s.chars().find(|&c| c == '*' || c == '>').unwrap_or('*');
                format!("`{s}` is not a valid token: `{w}` must be a whole token")
            }
            ErrorKind::TailNotLast => "`>` must be the last token".to_owned(),
            ErrorKind::WildcardNotAllowed => match self.usage {
                Usage::Publish => format!("wildcard `{s}` is not allowed in a publish subject"),
                Usage::PublishTemplate => {
                    format!("wildcard `{s}` is not allowed in a message subject")
                }
                Usage::Subscribe | Usage::Template => format!("wildcard `{s}` is not allowed here"),
            },
            ErrorKind::CaptureNotAllowed => match self.usage {
                Usage::Publish => format!("capture `{s}` is not allowed in a publish subject"),
                Usage::Subscribe => {
                    format!("capture `{s}` is not allowed in a subscription subject")
                }
                Usage::Template | Usage::PublishTemplate => {
                    format!("capture `{s}` is not allowed here")
                }
            },
            ErrorKind::InvalidCapture => invalid_capture_message(s),
            ErrorKind::DuplicateCapture(name) => {
                format!("capture `{{{name}}}` is used more than once")
            }
            ErrorKind::TailWithCapture => "`>` cannot be combined with captures".to_owned(),
        }
    }

    /// A one-line hint on how to fix the subject.
    pub fn help(&self) -> &'static str {
        match &self.kind {
            ErrorKind::Empty => "a subject needs at least one token, e.g. `orders.created`",
            ErrorKind::EmptyToken => "separate non-empty tokens with single dots, e.g. `orders.created`",
            ErrorKind::Whitespace => {
                "remove the whitespace; use `.` between tokens and `_` or `-` inside them"
            }
            ErrorKind::ControlCharacter => "remove the control character",
            ErrorKind::PartialWildcard => "use `*` for one whole token or `>` for the rest, e.g. `orders.*`",
            ErrorKind::TailNotLast => {
                "`>` matches all remaining tokens; move it to the end or use `*` for one token"
            }
            ErrorKind::WildcardNotAllowed => match self.usage {
                Usage::PublishTemplate => {
                    "use a literal token or a `{field}` capture, e.g. `orders.{region}.created`"
                }
                _ => "publish to a concrete subject without `*` or `>`, e.g. `orders.eu.created`",
            },
            ErrorKind::CaptureNotAllowed => match self.usage {
                Usage::Subscribe => "use `*` to match any one token, e.g. `orders.*.created`",
                _ => "use a literal token instead of the capture, e.g. `orders.eu.created`",
            },
            ErrorKind::InvalidCapture => {
                "a capture is a whole token with an identifier name, e.g. `orders.{region}.created`"
            }
            ErrorKind::DuplicateCapture(_) => "give each capture a distinct name, e.g. `routes.{from}.{to}`",
            ErrorKind::TailWithCapture => {
                "captures need a fixed token layout; use `*` instead of `>`, e.g. `orders.{region}.*`"
            }
        }
    }
}

fn invalid_capture_message(s: &str) -> String {
    if s == "{}" {
        return "`{}` is an empty capture: a capture needs a name".to_owned();
    }
    if let Some(name) = s.strip_prefix('{').and_then(|t| t.strip_suffix('}'))
        && !name.contains(['{', '}'])
    {
        return format!("`{s}` is not a valid capture: `{name}` is not an identifier");
    }
    let opens = s.matches('{').count();
    let closes = s.matches('}').count();
    if opens > closes {
        format!("`{s}` has an unclosed `{{`")
    } else if closes > opens {
        format!("`{s}` has an unmatched `}}`")
    } else {
        format!("`{s}` is not a valid token: a capture `{{name}}` must be a whole token")
    }
}

impl fmt::Display for SubjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())?;
        if !self.input.is_empty() {
            write!(
                f,
                " (at bytes {}..{} of `{}`)",
                self.range.start,
                self.range.end,
                self.input.escape_debug()
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for SubjectError {}
