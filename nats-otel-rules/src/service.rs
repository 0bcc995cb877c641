//! The NATS Services API's rules for a service's identity (ADR-32): names of
//! services and endpoints, and versions.

use core::fmt;
use core::ops::Range;

/// Why a service name, endpoint name or version was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceRuleKind {
    /// A service or endpoint name is empty. Range: `0..0`.
    EmptyName,
    /// A name character outside `A-Z a-z 0-9 - _`. Range: that character.
    NameCharacter(char),
    /// A version that is not a Semantic Versioning 2.0 version. Range: the
    /// part that is wrong.
    NotSemVer,
}

/// A rejected service name, endpoint name or version.
///
/// ```
/// use nats_otel_rules::{ServiceRuleKind, validate_service_name, validate_service_version};
///
/// assert!(validate_service_name("pricing-v2_eu").is_ok());
/// let err = validate_service_name("pricing.eu").unwrap_err();
/// assert_eq!(err.kind, ServiceRuleKind::NameCharacter('.'));
/// assert_eq!(err.range, 7..8);
/// assert!(validate_service_version("1.2.0-rc.1+build.5").is_ok());
/// assert_eq!(validate_service_version("1.2").unwrap_err().kind, ServiceRuleKind::NotSemVer);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRuleError {
    /// What is wrong.
    pub kind: ServiceRuleKind,
    /// Byte range of the problem in the input.
    pub range: Range<usize>,
}

impl ServiceRuleError {
    /// What is wrong (lower-case, rustc style).
    pub fn message(&self) -> String {
        match &self.kind {
            ServiceRuleKind::EmptyName => "a Services API name must not be empty".to_owned(),
            ServiceRuleKind::NameCharacter(c) => {
                format!("`{}` is not allowed in a Services API name", c.escape_debug())
            }
            ServiceRuleKind::NotSemVer => "not a semantic version (MAJOR.MINOR.PATCH)".to_owned(),
        }
    }

    /// How to fix it.
    pub fn help(&self) -> &'static str {
        match self.kind {
            ServiceRuleKind::EmptyName | ServiceRuleKind::NameCharacter(_) => {
                "names use letters, digits, `-` and `_` only (NATS ADR-32), e.g. `pricing-eu`"
            }
            ServiceRuleKind::NotSemVer => {
                "use Semantic Versioning 2.0: `1.2.0`, `1.2.0-rc.1`, `1.2.0+build.5` (no leading zeros, no `v`)"
            }
        }
    }
}

impl fmt::Display for ServiceRuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; help: {}", self.message(), self.help())
    }
}

impl std::error::Error for ServiceRuleError {}

/// Validates a service or endpoint name: non-empty, `[A-Za-z0-9_-]` only
/// (ADR-32). Names are subject tokens (`$SRV.PING.<name>`), so nothing else
/// fits.
pub fn validate_service_name(name: &str) -> Result<(), ServiceRuleError> {
    if name.is_empty() {
        return Err(ServiceRuleError { kind: ServiceRuleKind::EmptyName, range: 0..0 });
    }
    match name.char_indices().find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        Some((at, c)) => {
            Err(ServiceRuleError { kind: ServiceRuleKind::NameCharacter(c), range: at..at + c.len_utf8() })
        }
        None => Ok(()),
    }
}

/// Validates a service version: Semantic Versioning 2.0 (ADR-32), as
/// `MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`.
///
/// ```
/// use nats_otel_rules::validate_service_version;
///
/// for good in ["0.0.1", "1.2.3", "10.20.30", "1.0.0-alpha.1", "1.0.0-0A.is.legal", "1.0.0+20130313144700"] {
///     assert!(validate_service_version(good).is_ok(), "{good}");
/// }
/// for bad in ["", "1", "1.2", "v1.2.3", "01.2.3", "1.2.3-", "1.2.3-01", "1.2.3+", "1.2.3-a..b", " 1.2.3"] {
///     assert!(validate_service_version(bad).is_err(), "{bad}");
/// }
/// ```
pub fn validate_service_version(version: &str) -> Result<(), ServiceRuleError> {
    let wrong = |range: Range<usize>| ServiceRuleError { kind: ServiceRuleKind::NotSemVer, range };
    let (core_and_pre, build) = match version.split_once('+') {
        Some((head, build)) => (head, Some(build)),
        None => (version, None),
    };
    let (core, pre) = match core_and_pre.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (core_and_pre, None),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    if numbers.len() != 3 || !numbers.iter().all(|n| is_number(n)) {
        return Err(wrong(0..core.len()));
    }
    if let Some(pre) = pre {
        let start = core.len() + 1;
        // A numeric identifier has no leading zero; any identifier is non-empty.
        if !pre.split('.').all(|id| is_identifier(id) && (!is_digits(id) || is_number(id))) {
            return Err(wrong(start..start + pre.len()));
        }
    }
    if let Some(build) = build {
        let start = core_and_pre.len() + 1;
        if !build.split('.').all(is_identifier) {
            return Err(wrong(start..start + build.len()));
        }
    }
    Ok(())
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `0`, or digits without a leading zero.
fn is_number(s: &str) -> bool {
    is_digits(s) && (s == "0" || !s.starts_with('0'))
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}
