//! An app-wide subject prefix (`prod.`, `staging.eu.`), so one binary runs in
//! several environments while every subject in the code stays compile-time
//! checked. Set on the [`NatsService`](crate::NatsService::subject_prefix) and the
//! [`Publisher`](crate::Publisher::with_subject_prefix), validated once.

use std::fmt;
use std::sync::Arc;

/// A validated subject prefix: one or more literal tokens, stored with the
/// trailing `.`.
#[derive(Clone, PartialEq, Eq)]
pub struct SubjectPrefix {
    dotted: Arc<str>,
    tokens: usize,
}

impl SubjectPrefix {
    /// Checks `prefix` (`"prod"` or `"prod."`; `"eu.prod"` for several tokens):
    /// literal tokens only, no wildcards, no captures, no whitespace.
    ///
    /// ```
    /// use nats_otel_runtime::prefix::SubjectPrefix;
    ///
    /// let prod = SubjectPrefix::parse("prod.")?;
    /// assert_eq!(prod.apply("orders.eu.created"), "prod.orders.eu.created");
    /// assert_eq!(prod.tokens(), 1);
    /// assert!(SubjectPrefix::parse("prod.*").is_err());
    /// assert!(SubjectPrefix::parse("").is_err());
    /// # Ok::<(), nats_otel_runtime::prefix::InvalidPrefix>(())
    /// ```
    pub fn parse(prefix: &str) -> Result<Self, InvalidPrefix> {
        let bare = prefix.strip_suffix('.').unwrap_or(prefix);
        nats_otel_rules::validate(bare, nats_otel_rules::Usage::Publish)
            .map_err(|e| InvalidPrefix { prefix: prefix.to_owned(), reason: e.to_string() })?;
        Ok(Self { dotted: format!("{bare}.").into(), tokens: bare.split('.').count() })
    }

    /// `subject` with the prefix.
    pub fn apply(&self, subject: &str) -> String {
        let mut out = String::with_capacity(self.dotted.len() + subject.len());
        out.push_str(&self.dotted);
        out.push_str(subject);
        out
    }

    /// How many tokens the prefix adds (captures are read after them).
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// The prefix, with its trailing `.`.
    pub fn as_str(&self) -> &str {
        &self.dotted
    }
}

impl fmt::Debug for SubjectPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubjectPrefix({:?})", &*self.dotted)
    }
}

/// A subject prefix that is not one or more literal subject tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPrefix {
    prefix: String,
    reason: String,
}

impl fmt::Display for InvalidPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid subject prefix {:?}: {}", self.prefix, self.reason)
    }
}

impl std::error::Error for InvalidPrefix {}
