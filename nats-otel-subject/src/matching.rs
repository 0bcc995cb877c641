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
/// use nats_otel_subject::matches;
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
/// [`matches`] / [`Subject::is_match`](crate::Subject::is_match), with the
/// index from [`Subject::capture_index`](crate::Subject::capture_index).
///
/// ```
/// use nats_otel_subject::token_at;
///
/// assert_eq!(token_at("orders.eu.created", 0), Some("orders"));
/// assert_eq!(token_at("orders.eu.created", 1), Some("eu"));
/// assert_eq!(token_at("orders.eu.created", 3), None);
/// ```
pub fn token_at(subject: &str, index: usize) -> Option<&str> {
    subject.split('.').nth(index).filter(|t| !t.is_empty())
}
