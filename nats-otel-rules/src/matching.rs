//! Allocation-free matching of concrete subjects.

use crate::chars::is_forbidden;
use crate::subject::{Token, classify};

/// Whether `token` is a valid token of a concrete subject, as NATS accepts
/// it for publishing: non-empty, not exactly `*` or `>`, no whitespace or
/// control characters. Anything else (braces, `a*b`, UTF-8) is literal data.
#[inline]
pub(crate) fn is_concrete_token(token: &str) -> bool {
    !token.is_empty() && token != "*" && token != ">" && !token.chars().any(is_forbidden)
}

/// Allocation-free match of a concrete subject against a pattern string.
///
/// The pattern may contain `*` (exactly one token), `>` (one or more
/// trailing tokens) and `{name}` captures (exactly one token, like `*`).
/// The answer is the same as
/// `Subject::parse(pattern, Usage::Template).is_ok_and(|p| p.is_match(subject))`,
/// without allocating: an invalid pattern or subject simply returns `false`.
/// Never panics.
///
/// A *concrete subject* is what NATS accepts for publishing: non-empty
/// tokens separated by `.`, no whitespace or control characters, and no
/// token that is exactly `*` or `>`. Other characters, including braces and
/// `*`/`>` inside longer tokens, are ordinary data here (unlike in
/// [`Subject::parse`](crate::Subject::parse) with [`Usage::Publish`](crate::Usage::Publish),
/// which is stricter about subjects written in code).
///
/// ```
/// use nats_otel_rules::matches;
///
/// assert!(matches("orders.*.created", "orders.eu.created"));
/// assert!(matches("orders.{region}.created", "orders.eu.created"));
/// assert!(matches("orders.>", "orders.eu.created"));
/// assert!(!matches("orders.>", "orders"));          // `>` needs at least one token
/// assert!(!matches("orders.*", "orders.eu.created")); // `*` is exactly one token
/// assert!(!matches("orders.ord*", "orders.ord1"));  // invalid pattern
/// ```
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut pattern_tokens = pattern.split('.');
    let mut subject_tokens = subject.split('.');
    let mut index = 0usize;
    let mut has_capture = false;
    loop {
        let (p, s) = match (pattern_tokens.next(), subject_tokens.next()) {
            (None, None) => return true,
            (Some(p), Some(s)) => (p, s),
            _ => return false,
        };
        match classify(p) {
            Err(_) => return false,
            Ok(Token::Literal(l)) => {
                // A valid literal is itself a valid concrete token.
                if l != s {
                    return false;
                }
            }
            Ok(Token::Any) => {
                if !is_concrete_token(s) {
                    return false;
                }
            }
            Ok(Token::Capture(_)) => {
                if !is_concrete_token(s) {
                    return false;
                }
                // Duplicate capture names make the pattern invalid.
                if has_capture && pattern.split('.').take(index).any(|earlier| earlier == p) {
                    return false;
                }
                has_capture = true;
            }
            Ok(Token::Tail) => {
                return !has_capture
                    && pattern_tokens.next().is_none()
                    && is_concrete_token(s)
                    && subject_tokens.all(is_concrete_token);
            }
        }
        index += 1;
    }
}

/// The `index`-th (0-based) token of a concrete subject, or `None` when the
/// subject has fewer tokens or that token is empty.
///
/// Does not validate the rest of the subject; use it after a successful
/// [`matches`](fn@crate::matches) / [`Subject::is_match`](crate::Subject::is_match), with the
/// index from [`Subject::capture_index`](crate::Subject::capture_index).
///
/// ```
/// use nats_otel_rules::token_at;
///
/// assert_eq!(token_at("orders.eu.created", 0), Some("orders"));
/// assert_eq!(token_at("orders.eu.created", 1), Some("eu"));
/// assert_eq!(token_at("orders.eu.created", 3), None);
/// ```
pub fn token_at(subject: &str, index: usize) -> Option<&str> {
    subject.split('.').nth(index).filter(|t| !t.is_empty())
}

/// Whether every concrete subject that pattern `inner` matches is also matched
/// by pattern `outer`: [`Subject::covers`](crate::Subject::covers) on strings,
/// as a `const fn`, so the macros can check at compile time that a handler's
/// subject lies within a message type's pattern.
///
/// Captures act as `*`. Both patterns must be valid [`Usage::Template`](crate::Usage::Template)
/// subjects (an empty pattern covers nothing and is covered by nothing).
///
/// ```
/// use nats_otel_rules::covers;
///
/// const OK: bool = covers("orders.*.created", "orders.{region}.created");
/// assert!(OK);
/// assert!(covers("orders.>", "orders.eu.created"));
/// assert!(!covers("orders.*.created", "orders.>"));
/// assert!(!covers("orders.eu.created", "orders.*.created"));
/// ```
pub const fn covers(outer: &str, inner: &str) -> bool {
    let (outer, inner) = (outer.as_bytes(), inner.as_bytes());
    if outer.is_empty() || inner.is_empty() {
        return false;
    }
    let (mut o, mut i) = (0, 0);
    loop {
        let (o_end, i_end) = (token_end(outer, o), token_end(inner, i));
        match (token_kind(outer, o, o_end), token_kind(inner, i, i_end)) {
            // `>` matches any non-empty rest; `inner` has at least one more token.
            (TokenKind::Tail, _) => return true,
            // `inner`'s `>` matches arbitrarily long subjects; one token does not.
            (_, TokenKind::Tail) => return false,
            (TokenKind::Any, _) => {}
            (TokenKind::Literal, TokenKind::Literal) => {
                if !bytes_eq(outer, o, o_end, inner, i, i_end) {
                    return false;
                }
            }
            (TokenKind::Literal, TokenKind::Any) => return false,
        }
        let (outer_done, inner_done) = (o_end == outer.len(), i_end == inner.len());
        if outer_done || inner_done {
            return outer_done && inner_done;
        }
        o = o_end + 1;
        i = i_end + 1;
    }
}

/// What one token of a pattern matches, for [`covers`].
enum TokenKind {
    Literal,
    /// `*` or a `{capture}`.
    Any,
    /// `>`.
    Tail,
}

const fn token_end(bytes: &[u8], start: usize) -> usize {
    let mut end = start;
    while end < bytes.len() && bytes[end] != b'.' {
        end += 1;
    }
    end
}

const fn token_kind(bytes: &[u8], start: usize, end: usize) -> TokenKind {
    if end == start + 1 && bytes[start] == b'*' {
        TokenKind::Any
    } else if end == start + 1 && bytes[start] == b'>' {
        TokenKind::Tail
    } else if end >= start + 2 && bytes[start] == b'{' && bytes[end - 1] == b'}' {
        TokenKind::Any
    } else {
        TokenKind::Literal
    }
}

const fn bytes_eq(a: &[u8], a_start: usize, a_end: usize, b: &[u8], b_start: usize, b_end: usize) -> bool {
    if a_end - a_start != b_end - b_start {
        return false;
    }
    let mut k = 0;
    while k < a_end - a_start {
        if a[a_start + k] != b[b_start + k] {
            return false;
        }
        k += 1;
    }
    true
}
