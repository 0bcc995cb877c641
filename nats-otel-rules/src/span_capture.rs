//! `capture_headers` and `capture_body`: what a `process` span may record of a
//! message, opted into per endpoint. (Subject `{captures}` are another thing;
//! they belong to [`Subject`](crate::Subject).)

use core::fmt;
use core::ops::Range;

use crate::chars::describe_char;
use crate::setting::{Setting, SettingError, SettingErrorKind};

/// The largest `capture_body` cap, in bytes: a span is not a payload store.
pub const MAX_BODY_CAPTURE: usize = 64 * 1024;

/// Why a `capture_headers` name was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderNameErrorKind {
    /// The name is empty. Range: `0..0`.
    Empty,
    /// A character NATS does not accept in a header name: anything but visible
    /// ASCII, and `:`. Range: that character.
    ForbiddenCharacter(char),
    /// The same name as an earlier one of the list, ignoring ASCII case (header
    /// names match case-insensitively). Range: the whole name.
    Duplicate,
}

/// A rejected header name: what is wrong, where in the name, and which name
/// of the list.
///
/// ```
/// use nats_otel_rules::{HeaderNameErrorKind, validate_header_name};
///
/// let err = validate_header_name("x tenant").unwrap_err();
/// assert_eq!(err.kind, HeaderNameErrorKind::ForbiddenCharacter(' '));
/// assert_eq!(err.range, 1..2);
/// assert_eq!(err.message(), "`x tenant` is not a header name: it contains a space");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderNameError {
    /// What is wrong.
    pub kind: HeaderNameErrorKind,
    /// Byte range in the name the error is about.
    pub range: Range<usize>,
    /// The position of the name in the list it came from (0 for a single name).
    pub index: usize,
    /// The rejected name, for messages.
    name: String,
}

impl HeaderNameError {
    fn new(kind: HeaderNameErrorKind, range: Range<usize>, name: &str) -> Self {
        Self { kind, range, index: 0, name: name.to_owned() }
    }

    /// The rejected name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A lower-case, rustc-style message naming the header.
    pub fn message(&self) -> String {
        match &self.kind {
            HeaderNameErrorKind::Empty => "header name is empty".to_owned(),
            HeaderNameErrorKind::ForbiddenCharacter(c) => format!(
                "`{}` is not a header name: it contains {}",
                self.name.escape_debug(),
                describe_char(*c)
            ),
            HeaderNameErrorKind::Duplicate => format!("header `{}` is listed twice", self.name),
        }
    }

    /// A one-line hint on how to fix the name.
    pub fn help(&self) -> &'static str {
        match &self.kind {
            HeaderNameErrorKind::Empty => "name a header, e.g. `capture_headers = [\"x-tenant\"]`",
            HeaderNameErrorKind::ForbiddenCharacter(_) => {
                "header names are visible ASCII characters other than `:`, e.g. `x-tenant`"
            }
            HeaderNameErrorKind::Duplicate => "header names match case-insensitively; remove one",
        }
    }
}

impl fmt::Display for HeaderNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())?;
        if !self.range.is_empty() && self.kind != HeaderNameErrorKind::Duplicate {
            write!(f, " (at bytes {}..{})", self.range.start, self.range.end)?;
        }
        Ok(())
    }
}

impl std::error::Error for HeaderNameError {}

/// Validates one header name as NATS accepts it: non-empty, visible ASCII
/// (`!`..=`~`), no `:`.
///
/// ```
/// use nats_otel_rules::{HeaderNameErrorKind, validate_header_name};
///
/// assert!(validate_header_name("Nats-Msg-Id").is_ok());
/// assert_eq!(validate_header_name("").unwrap_err().kind, HeaderNameErrorKind::Empty);
/// assert_eq!(validate_header_name("x:y").unwrap_err().range, 1..2);
/// ```
pub fn validate_header_name(name: &str) -> Result<(), HeaderNameError> {
    if name.is_empty() {
        return Err(HeaderNameError::new(HeaderNameErrorKind::Empty, 0..0, name));
    }
    match name.char_indices().find(|&(_, c)| !c.is_ascii_graphic() || c == ':') {
        Some((i, c)) => {
            Err(HeaderNameError::new(HeaderNameErrorKind::ForbiddenCharacter(c), i..i + c.len_utf8(), name))
        }
        None => Ok(()),
    }
}

/// Every problem of a `capture_headers` list, in list order: each name as
/// [`validate_header_name`] checks it, and names given twice (ignoring case).
/// [`HeaderNameError::index`] says which name an error is about.
///
/// ```
/// use nats_otel_rules::{HeaderNameErrorKind, capture_header_errors};
///
/// let errors: Vec<_> = capture_header_errors(&["x-tenant", "", "X-Tenant"]).collect();
/// assert_eq!(errors.len(), 2);
/// assert_eq!((errors[0].index, &errors[0].kind), (1, &HeaderNameErrorKind::Empty));
/// assert_eq!((errors[1].index, &errors[1].kind), (2, &HeaderNameErrorKind::Duplicate));
/// ```
pub fn capture_header_errors<S: AsRef<str>>(names: &[S]) -> impl Iterator<Item = HeaderNameError> + '_ {
    names.iter().enumerate().filter_map(|(index, name)| {
        let name = name.as_ref();
        let earlier = names.get(..index).unwrap_or_default();
        let error = match validate_header_name(name) {
            Err(error) => error,
            Ok(()) if earlier.iter().any(|e| e.as_ref().eq_ignore_ascii_case(name)) => {
                HeaderNameError::new(HeaderNameErrorKind::Duplicate, 0..name.len(), name)
            }
            Ok(()) => return None,
        };
        Some(HeaderNameError { index, ..error })
    })
}

/// Validates a `capture_headers` list: the first of [`capture_header_errors`].
pub fn validate_capture_headers<S: AsRef<str>>(names: &[S]) -> Result<(), HeaderNameError> {
    capture_header_errors(names).next().map_or(Ok(()), Err)
}

/// Validates a `capture_body` cap: at least 1 byte, at most
/// [`MAX_BODY_CAPTURE`].
///
/// ```
/// use nats_otel_rules::{MAX_BODY_CAPTURE, validate_body_capture};
///
/// assert!(validate_body_capture(256).is_ok());
/// assert!(validate_body_capture(MAX_BODY_CAPTURE).is_ok());
/// assert!(validate_body_capture(0).is_err());
/// assert!(validate_body_capture(MAX_BODY_CAPTURE + 1).is_err());
/// ```
pub fn validate_body_capture(max_bytes: usize) -> Result<(), SettingError> {
    match max_bytes {
        0 => Err(SettingError::new(SettingErrorKind::Zero, Setting::CaptureBody)),
        n if n > MAX_BODY_CAPTURE => Err(SettingError::new(
            SettingErrorKind::BodyCaptureTooLarge { max_bytes: n },
            Setting::CaptureBody,
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn header_names() {
        for ok in ["x-tenant", "Nats-Msg-Id", "!#$%&'*+-.^_`|~", "traceparent"] {
            assert_eq!(validate_header_name(ok), Ok(()), "{ok}");
        }
        let kind_range = |name: &str| validate_header_name(name).map_err(|e| (e.kind, e.range));
        assert_eq!(kind_range(""), Err((HeaderNameErrorKind::Empty, 0..0)));
        assert_eq!(kind_range("x tenant"), Err((HeaderNameErrorKind::ForbiddenCharacter(' '), 1..2)));
        assert_eq!(kind_range("x:tenant"), Err((HeaderNameErrorKind::ForbiddenCharacter(':'), 1..2)));
        assert_eq!(kind_range("x\r"), Err((HeaderNameErrorKind::ForbiddenCharacter('\r'), 1..2)));
        assert_eq!(kind_range("städte"), Err((HeaderNameErrorKind::ForbiddenCharacter('ä'), 2..4)));
        assert_eq!(kind_range("\u{7f}"), Err((HeaderNameErrorKind::ForbiddenCharacter('\u{7f}'), 0..1)));
    }

    #[test]
    fn header_messages() {
        let empty = validate_header_name("").unwrap_err();
        assert_eq!(empty.message(), "header name is empty");
        assert_eq!(empty.help(), "name a header, e.g. `capture_headers = [\"x-tenant\"]`");
        assert_eq!(empty.to_string(), "header name is empty");
        let tab = validate_header_name("a\tb").unwrap_err();
        assert_eq!(tab.message(), "`a\\tb` is not a header name: it contains a tab");
        assert_eq!(tab.to_string(), "`a\\tb` is not a header name: it contains a tab (at bytes 1..2)");
        let colon = validate_header_name("a:b").unwrap_err();
        assert_eq!(colon.message(), "`a:b` is not a header name: it contains `:`");
    }

    #[test]
    fn header_lists() {
        assert_eq!(capture_header_errors::<&str>(&[]).count(), 0);
        assert_eq!(validate_capture_headers(&["a", "b", "c"]), Ok(()));
        let errors: Vec<_> = capture_header_errors(&["a", "A", "b", "a", "b c"]).collect();
        let summary: Vec<_> = errors.iter().map(|e| (e.index, e.kind.clone(), e.range.clone())).collect();
        assert_eq!(
            summary,
            [
                (1, HeaderNameErrorKind::Duplicate, 0..1),
                (3, HeaderNameErrorKind::Duplicate, 0..1),
                (4, HeaderNameErrorKind::ForbiddenCharacter(' '), 1..2),
            ]
        );
        assert_eq!(errors[0].message(), "header `A` is listed twice");
        assert_eq!(errors[0].to_string(), "header `A` is listed twice");
        assert_eq!(validate_capture_headers(&["a", "A"]).unwrap_err().index, 1);
        let owned = vec![String::from("x"), String::from("X")];
        assert_eq!(validate_capture_headers(&owned).unwrap_err().name(), "X");
    }

    #[test]
    fn body_capture() {
        assert_eq!(validate_body_capture(1), Ok(()));
        assert_eq!(validate_body_capture(MAX_BODY_CAPTURE), Ok(()));
        let zero = validate_body_capture(0).unwrap_err();
        assert_eq!((zero.kind.clone(), zero.setting), (SettingErrorKind::Zero, Setting::CaptureBody));
        let large = validate_body_capture(1_000_000).unwrap_err();
        assert_eq!(
            large.message(),
            "`capture_body = 1000000` is more than the 65536 bytes a span may record"
        );
        assert_eq!(large.help(), "record a prefix of the payload, e.g. `capture_body = 1024`");
    }
}
