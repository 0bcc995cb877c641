//! Character classes shared by subjects and names.

use core::ops::Range;

/// A character that is never allowed in a subject or a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BadChar {
    /// A run of whitespace characters (byte range relative to the scanned string).
    Whitespace(Range<usize>),
    /// One control character that is not whitespace.
    Control(Range<usize>, char),
}

/// Whitespace or a control character (C0, DEL and C1).
#[inline]
pub(crate) fn is_forbidden(c: char) -> bool {
    c.is_whitespace() || c.is_control()
}

/// The first whitespace run or control character in `s`, if any.
///
/// Whitespace takes precedence over "control": `\t`, `\n` and `\r` are
/// reported as whitespace.
pub(crate) fn first_bad_char(s: &str) -> Option<BadChar> {
    let (start, c) = s.char_indices().find(|&(_, c)| is_forbidden(c))?;
    if c.is_whitespace() {
        let run: usize =
            s.get(start..).unwrap_or("").chars().take_while(|c| c.is_whitespace()).map(char::len_utf8).sum();
        Some(BadChar::Whitespace(start..start + run))
    } else {
        Some(BadChar::Control(start..start + c.len_utf8(), c))
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`
pub(crate) fn is_ident(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A human description of a forbidden character for error messages,
/// e.g. "a space" or "`\u{a0}`".
pub(crate) fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        '\t' => "a tab".to_owned(),
        '\n' => "a newline".to_owned(),
        '\r' => "a carriage return".to_owned(),
        c if c.is_whitespace() || c.is_control() => format!("`{}`", c.escape_unicode()),
        c => format!("`{c}`"),
    }
}
