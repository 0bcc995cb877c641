//! Parsing subjects into tokens.

use core::fmt;
use core::ops::Range;

use crate::chars::{BadChar, first_bad_char, is_ident};
use crate::error::{ErrorKind, SubjectError};
use crate::matching::is_concrete_token;

/// One token of a parsed subject.
///
/// ```
/// use nats_otel_rules::{Subject, Token, Usage};
///
/// let s = Subject::parse("orders.{region}.*.>", Usage::Subscribe);
/// assert!(s.is_err()); // captures are not allowed in subscriptions
///
/// let s = Subject::parse("orders.{region}.*", Usage::Template).unwrap();
/// let tokens: Vec<Token<'_>> = s.segments().iter().map(|seg| seg.token).collect();
/// assert_eq!(tokens, [Token::Literal("orders"), Token::Capture("region"), Token::Any]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token<'a> {
    /// A literal token such as `orders`; matches exactly itself.
    Literal(&'a str),
    /// The single-token wildcard `*`.
    Any,
    /// The tail wildcard `>`: one or more trailing tokens.
    Tail,
    /// A capture `{name}` (the name without braces); matches exactly one
    /// token, like `*`.
    Capture(&'a str),
}

impl Token<'_> {
    /// Whether this token is `*`, `>` or a capture, i.e. not a literal.
    pub fn is_wildcard(&self) -> bool {
        !matches!(self, Token::Literal(_))
    }
}

/// A token together with where it is in the parsed input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    /// The token.
    pub token: Token<'a>,
    /// Byte range of the token inside the input (for a capture, including
    /// the braces).
    pub range: Range<usize>,
}

/// What a subject string is used for; decides what is allowed.
///
/// | usage               | `*` / `>` | `{capture}` | example                   |
/// |---------------------|-----------|-------------|---------------------------|
/// | [`Publish`]         | no        | no          | `orders.eu.created`       |
/// | [`Subscribe`]       | yes       | no          | `orders.*.created`        |
/// | [`Template`]        | yes       | yes (¹)     | `orders.{region}.*`       |
/// | [`PublishTemplate`] | no        | yes         | `orders.{region}.created` |
///
/// (¹) A template must not combine `>` with captures
/// ([`ErrorKind::TailWithCapture`]).
///
/// [`Publish`]: Usage::Publish
/// [`Subscribe`]: Usage::Subscribe
/// [`Template`]: Usage::Template
/// [`PublishTemplate`]: Usage::PublishTemplate
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A concrete subject to publish to: no wildcards, no captures.
    Publish,
    /// A subscription subject: wildcards allowed, no captures.
    Subscribe,
    /// A handler subject: captures and wildcards allowed, e.g.
    /// `orders.{region}.*` (but not `>` together with captures).
    Template,
    /// A message type subject: captures allowed, wildcards not, e.g.
    /// `orders.{region}.created`.
    PublishTemplate,
}

impl Usage {
    fn allows_wildcards(self) -> bool {
        matches!(self, Usage::Subscribe | Usage::Template)
    }

    fn allows_captures(self) -> bool {
        matches!(self, Usage::Template | Usage::PublishTemplate)
    }
}

/// A validated subject (or subject pattern) and its tokens.
///
/// Borrows the input; parsing allocates only the segment list.
///
/// ```
/// use nats_otel_rules::{Subject, Usage};
///
/// let handler = Subject::parse("orders.{region}.created", Usage::Template)?;
/// assert_eq!(handler.pattern(), "orders.*.created");
/// assert!(handler.is_match("orders.eu.created"));
/// assert_eq!(handler.capture_index("region"), Some(1));
/// # Ok::<(), nats_otel_rules::SubjectError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject<'a> {
    source: &'a str,
    segments: Vec<Segment<'a>>,
}

impl<'a> Subject<'a> {
    /// Parses and validates `input` for the given [`Usage`].
    ///
    /// Returns the first problem in reading order (tokens are checked left
    /// to right; within a token, whitespace and control characters are
    /// reported before the token's shape).
    ///
    /// ```
    /// use nats_otel_rules::{ErrorKind, Subject, Usage};
    ///
    /// assert!(Subject::parse("orders.*.created", Usage::Subscribe).is_ok());
    ///
    /// let err = Subject::parse("orders.ord*", Usage::Subscribe).unwrap_err();
    /// assert_eq!(err.kind, ErrorKind::PartialWildcard);
    /// assert_eq!(err.range, 7..11);
    /// ```
    pub fn parse(input: &'a str, usage: Usage) -> Result<Self, SubjectError> {
        let mut segments: Vec<Segment<'a>> = Vec::new();
        walk(input, usage, |segment| {
            if let Token::Capture(name) = segment.token
                && segments.iter().any(|s| s.token == Token::Capture(name))
            {
                return Err(ErrorKind::DuplicateCapture(name.to_owned()));
            }
            segments.push(segment);
            Ok(())
        })?;
        Ok(Subject { source: input, segments })
    }

    /// The parsed input, unchanged.
    pub fn as_str(&self) -> &'a str {
        self.source
    }

    /// The tokens in order, with their byte ranges.
    pub fn segments(&self) -> &[Segment<'a>] {
        &self.segments
    }

    /// Whether the subject contains `*`, `>` or a capture.
    ///
    /// ```
    /// use nats_otel_rules::{Subject, Usage};
    ///
    /// assert!(!Subject::parse("a.b", Usage::Publish).unwrap().has_wildcards());
    /// assert!(Subject::parse("a.{x}", Usage::PublishTemplate).unwrap().has_wildcards());
    /// ```
    pub fn has_wildcards(&self) -> bool {
        self.segments.iter().any(|s| s.token.is_wildcard())
    }

    /// The captures in order: name (without braces) and byte range of
    /// `{name}` in the input.
    ///
    /// ```
    /// use nats_otel_rules::{Subject, Usage};
    ///
    /// let s = Subject::parse("orders.{region}.{kind}", Usage::PublishTemplate).unwrap();
    /// let caps: Vec<_> = s.captures().collect();
    /// assert_eq!(caps, [("region", 7..15), ("kind", 16..22)]);
    /// ```
    pub fn captures(&self) -> impl Iterator<Item = (&'a str, Range<usize>)> + '_ {
        self.segments.iter().filter_map(|s| match s.token {
            Token::Capture(name) => Some((name, s.range.clone())),
            _ => None,
        })
    }

    /// The subject as a NATS subscription pattern: captures rendered as `*`.
    ///
    /// ```
    /// use nats_otel_rules::{Subject, Usage};
    ///
    /// let s = Subject::parse("orders.{region}.created", Usage::Template).unwrap();
    /// assert_eq!(s.pattern(), "orders.*.created");
    /// ```
    pub fn pattern(&self) -> String {
        let mut out = String::with_capacity(self.source.len());
        for (i, seg) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            out.push_str(match seg.token {
                Token::Literal(l) => l,
                Token::Any | Token::Capture(_) => "*",
                Token::Tail => ">",
            });
        }
        out
    }

    /// Whether the concrete subject `subject` matches this pattern
    /// (captures match one token, like `*`). Does not allocate.
    ///
    /// `subject` must be a concrete subject as NATS accepts it for
    /// publishing (see [`matches`](crate::matches)); otherwise the answer
    /// is `false`.
    ///
    /// ```
    /// use nats_otel_rules::{Subject, Usage};
    ///
    /// let s = Subject::parse("orders.>", Usage::Subscribe).unwrap();
    /// assert!(s.is_match("orders.eu.created"));
    /// assert!(!s.is_match("orders"));
    /// ```
    pub fn is_match(&self, subject: &str) -> bool {
        let mut tokens = subject.split('.');
        for seg in &self.segments {
            match seg.token {
                Token::Literal(l) => {
                    // A valid literal is itself a valid concrete token.
                    if tokens.next() != Some(l) {
                        return false;
                    }
                }
                Token::Any | Token::Capture(_) => match tokens.next() {
                    Some(t) if is_concrete_token(t) => {}
                    _ => return false,
                },
                Token::Tail => {
                    let mut any = false;
                    for t in tokens {
                        if !is_concrete_token(t) {
                            return false;
                        }
                        any = true;
                    }
                    return any;
                }
            }
        }
        tokens.next().is_none()
    }

    /// Whether every concrete subject matched by `other` is also matched by
    /// `self` (captures act as `*`).
    ///
    /// Useful to check that a handler receives every message of a message
    /// type, or that one subscription makes another redundant.
    ///
    /// ```
    /// use nats_otel_rules::{Subject, Usage};
    ///
    /// let p = |s| Subject::parse(s, Usage::Template).unwrap();
    /// assert!(p("orders.>").covers(&p("orders.*.created")));
    /// assert!(p("orders.*").covers(&p("orders.{region}")));
    /// assert!(!p("orders.*").covers(&p("orders.>")));
    /// assert!(p("a.*").covers(&p("a.b")));
    /// assert!(!p("a.b").covers(&p("a.*")));
    /// ```
    pub fn covers(&self, other: &Subject<'_>) -> bool {
        let mut theirs = other.segments.iter().map(|s| s.token);
        for ours in self.segments.iter().map(|s| s.token) {
            let Some(t) = theirs.next() else {
                // `other` has fewer tokens (and no `>`): its subjects are too
                // short for the rest of `self`.
                return false;
            };
            match (ours, t) {
                // `>` matches any non-empty rest; `other` has at least one more token.
                (Token::Tail, _) => return true,
                // `other`'s `>` matches arbitrarily long subjects, ours do not.
                (_, Token::Tail) => return false,
                (Token::Any | Token::Capture(_), _) => {}
                (Token::Literal(a), Token::Literal(b)) if a == b => {}
                (Token::Literal(_), _) => return false,
            }
        }
        theirs.next().is_none()
    }

    /// The token index of the capture `name`, for extracting its value from
    /// a matched concrete subject with [`token_at`](crate::token_at).
    ///
    /// ```
    /// use nats_otel_rules::{Subject, Usage, token_at};
    ///
    /// let s = Subject::parse("orders.{region}.created", Usage::Template).unwrap();
    /// let i = s.capture_index("region").unwrap();
    /// assert_eq!(token_at("orders.eu.created", i), Some("eu"));
    /// assert_eq!(s.capture_index("nope"), None);
    /// ```
    pub fn capture_index(&self, name: &str) -> Option<usize> {
        self.segments.iter().position(|s| s.token == Token::Capture(name))
    }
}

impl fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.source)
    }
}

/// The range reported for an empty token starting (and ending) at `pos`:
/// the `.` separators around it, i.e. `0..1` for a leading `.`, the `..` for
/// a doubled dot and the last byte for a trailing `.`.
fn empty_token_range(input: &str, pos: usize) -> Range<usize> {
    let start = if pos > 0 { pos - 1 } else { pos };
    let end = if pos < input.len() { pos + 1 } else { pos };
    start..end
}

/// Classifies one token under the most permissive usage ([`Usage::Template`]
/// without the cross-token rules). Error ranges are relative to `text`.
pub(crate) fn classify(text: &str) -> Result<Token<'_>, (ErrorKind, Range<usize>)> {
    if text.is_empty() {
        return Err((ErrorKind::EmptyToken, 0..0));
    }
    match first_bad_char(text) {
        None => {}
        Some(BadChar::Whitespace(r)) => return Err((ErrorKind::Whitespace, r)),
        Some(BadChar::Control(r, _)) => return Err((ErrorKind::ControlCharacter, r)),
    }
    let whole = 0..text.len();
    if text.contains(['{', '}']) {
        return match text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            Some(name) if is_ident(name) => Ok(Token::Capture(name)),
            _ => Err((ErrorKind::InvalidCapture, whole)),
        };
    }
    match text {
        "*" => Ok(Token::Any),
        ">" => Ok(Token::Tail),
        t if t.contains(['*', '>']) => Err((ErrorKind::PartialWildcard, whole)),
        t => Ok(Token::Literal(t)),
    }
}

/// Checks `input` for `usage` like [`Subject::parse`], without keeping the
/// segments: no allocation for subjects without captures. The runtime calls it
/// on every traced publish.
///
/// ```
/// use nats_otel_rules::{validate, Usage};
/// assert!(validate("orders.eu.created", Usage::Publish).is_ok());
/// assert!(validate("orders.*", Usage::Publish).is_err());
/// ```
pub fn validate(input: &str, usage: Usage) -> Result<(), SubjectError> {
    if is_plain(input) {
        return Ok(());
    }
    if usage.allows_captures() {
        // Duplicate captures need the segments seen so far.
        return Subject::parse(input, usage).map(|_| ());
    }
    walk(input, usage, |_| Ok(()))
}

/// Non-empty `.`-separated tokens of `[A-Za-z0-9_-]`: valid for every usage,
/// and decided in one pass over the bytes. Most subjects a service publishes
/// to look like this; anything else takes the full walk (and its error).
///
/// A table lookup a byte: 112 instructions for a 9-byte subject, where a
/// match on byte ranges took 183 (callgrind; `Publisher::publish` checks every
/// subject it sends).
pub(crate) fn is_plain(input: &str) -> bool {
    let mut token_len = 0usize;
    for &byte in input.as_bytes() {
        match PLAIN[usize::from(byte)] {
            Plain::Token => token_len += 1,
            Plain::Dot if token_len > 0 => token_len = 0,
            _ => return false,
        }
    }
    token_len > 0
}

/// What a byte is to [`is_plain`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Plain {
    Token,
    Dot,
    Other,
}

/// [`Plain`] of every byte.
static PLAIN: [Plain; 256] = {
    let mut table = [Plain::Other; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            table[byte] = Plain::Token;
        } else if b == b'.' {
            table[byte] = Plain::Dot;
        }
        byte += 1;
    }
    table
};

/// The grammar, once: splits `input` into tokens, checks each against `usage`,
/// and hands every segment to `visit` (which may reject it with an error kind).
fn walk<'a>(
    input: &'a str,
    usage: Usage,
    mut visit: impl FnMut(Segment<'a>) -> Result<(), ErrorKind>,
) -> Result<(), SubjectError> {
    let fail = |kind: ErrorKind, range: Range<usize>| SubjectError::new(kind, range, input, usage);
    if input.is_empty() {
        return Err(fail(ErrorKind::Empty, 0..0));
    }
    let mut start = 0;
    let mut has_capture = false;
    for text in input.split('.') {
        let end = start + text.len();
        if text.is_empty() {
            return Err(fail(ErrorKind::EmptyToken, empty_token_range(input, start)));
        }
        let token = classify(text).map_err(|(kind, rel)| fail(kind, start + rel.start..start + rel.end))?;
        let range = start..end;
        match token {
            Token::Literal(_) => {}
            Token::Any | Token::Tail if !usage.allows_wildcards() => {
                return Err(fail(ErrorKind::WildcardNotAllowed, range));
            }
            Token::Any => {}
            Token::Tail => {
                if end != input.len() {
                    return Err(fail(ErrorKind::TailNotLast, range));
                }
                if has_capture {
                    return Err(fail(ErrorKind::TailWithCapture, range));
                }
            }
            Token::Capture(_) if !usage.allows_captures() => {
                return Err(fail(ErrorKind::CaptureNotAllowed, range));
            }
            Token::Capture(_) => has_capture = true,
        }
        visit(Segment { token, range: range.clone() }).map_err(|kind| fail(kind, range))?;
        start = end + 1;
    }
    Ok(())
}
