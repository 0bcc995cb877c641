//! Errors about one option's value: the counts, the body-capture cap and the
//! rules between options that both the macros and the runtime's builders take.

use core::fmt;

/// An option of `#[nats_subscribe]` / `#[jetstream_consumer]`, and the builder
/// method of the same name on the runtime's endpoint types.
///
/// A number has no parts to point into, so a [`SettingError`] names the option
/// to blame instead of a byte range: the macros put the error on that option's
/// value, the runtime names it in its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Setting {
    /// `concurrency`: handlers running at once.
    Concurrency,
    /// `batch`: messages per pull.
    Batch,
    /// `max_deliver`: deliveries before giving up.
    MaxDeliver,
    /// `max_ack_pending`: unacknowledged messages at once.
    MaxAckPending,
    /// `backoff`: nak delays per delivery.
    Backoff,
    /// `capture_body`: payload bytes a span records.
    CaptureBody,
    /// `batch_size`: messages a batch handler takes at once.
    BatchSize,
    /// `batch_wait`: how long a batch handler waits to fill a batch.
    BatchWait,
}

impl Setting {
    /// The option's name as the user writes it, e.g. `max_deliver`.
    pub fn name(self) -> &'static str {
        match self {
            Setting::Concurrency => "concurrency",
            Setting::Batch => "batch",
            Setting::MaxDeliver => "max_deliver",
            Setting::MaxAckPending => "max_ack_pending",
            Setting::Backoff => "backoff",
            Setting::CaptureBody => "capture_body",
            Setting::BatchSize => "batch_size",
            Setting::BatchWait => "batch_wait",
        }
    }
}

/// Why an option's value was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SettingErrorKind {
    /// A count that must be at least 1 is 0.
    Zero,
    /// `capture_body` above [`MAX_BODY_CAPTURE`](crate::MAX_BODY_CAPTURE).
    BodyCaptureTooLarge {
        /// The cap asked for, in bytes.
        max_bytes: usize,
    },
    /// As many `backoff` delays as `max_deliver` allows deliveries, or more:
    /// nats-server refuses such a consumer.
    BackoffNotBelowMaxDeliver {
        /// How many delays `backoff` has.
        delays: usize,
        /// The `max_deliver` in effect.
        max_deliver: i64,
    },
    /// More handlers than `max_ack_pending` lets the server deliver at once.
    ConcurrencyAboveMaxAckPending {
        /// The `concurrency` asked for.
        concurrency: usize,
        /// The `max_ack_pending` in effect.
        max_ack_pending: i64,
    },
    /// Batches in flight (`batch_size` × `concurrency`) hold more messages
    /// than `max_ack_pending` lets the server deliver: the last batch would
    /// never fill.
    BatchesAboveMaxAckPending {
        /// The `batch_size` asked for.
        batch_size: usize,
        /// The `concurrency` in effect (batches at once).
        concurrency: usize,
        /// The `max_ack_pending` in effect (the server's default when not given).
        max_ack_pending: i64,
    },
    /// A batch may wait to fill as long as the server waits for an ack, or
    /// longer: its first messages would be redelivered meanwhile.
    BatchWaitNotBelowAckWait {
        /// `batch_wait`, in milliseconds.
        batch_wait_ms: u128,
        /// `ack_wait` in effect, in milliseconds.
        ack_wait_ms: u128,
    },
}

/// A rejected option value: what is wrong and which option to point at.
///
/// ```
/// use nats_otel_rules::{Setting, SettingErrorKind, validate_backoff_against_max_deliver};
///
/// let err = validate_backoff_against_max_deliver(2, 2).unwrap_err();
/// assert_eq!(err.setting, Setting::Backoff);
/// assert_eq!(err.kind, SettingErrorKind::BackoffNotBelowMaxDeliver { delays: 2, max_deliver: 2 });
/// assert_eq!(err.message(), "2 backoff delays need `max_deliver` above 2, but it is 2");
/// assert_eq!(err.help(), "raise `max_deliver` to at least 3 or shorten `backoff`");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// What is wrong.
    pub kind: SettingErrorKind,
    /// The option the error is about, where a macro points.
    pub setting: Setting,
}

impl SettingError {
    pub(crate) fn new(kind: SettingErrorKind, setting: Setting) -> Self {
        Self { kind, setting }
    }

    /// A lower-case, rustc-style message naming the option, e.g.
    /// "`concurrency` must be at least 1".
    pub fn message(&self) -> String {
        let name = self.setting.name();
        match &self.kind {
            SettingErrorKind::Zero if self.setting == Setting::CaptureBody => {
                "`capture_body = 0` records nothing".to_owned()
            }
            SettingErrorKind::Zero => format!("`{name}` must be at least 1"),
            SettingErrorKind::BodyCaptureTooLarge { max_bytes } => format!(
                "`capture_body = {max_bytes}` is more than the {} bytes a span may record",
                crate::MAX_BODY_CAPTURE
            ),
            SettingErrorKind::BackoffNotBelowMaxDeliver { delays, max_deliver } => {
                format!("{delays} backoff delays need `max_deliver` above {delays}, but it is {max_deliver}")
            }
            SettingErrorKind::ConcurrencyAboveMaxAckPending { concurrency, max_ack_pending } => {
                format!("`concurrency = {concurrency}` exceeds `max_ack_pending = {max_ack_pending}`")
            }
            SettingErrorKind::BatchesAboveMaxAckPending { batch_size, concurrency, max_ack_pending } => {
                format!(
                    "{concurrency} batch(es) of `batch_size = {batch_size}` exceed `max_ack_pending = {max_ack_pending}`"
                )
            }
            SettingErrorKind::BatchWaitNotBelowAckWait { batch_wait_ms, ack_wait_ms } => {
                format!(
                    "`batch_wait` of {batch_wait_ms} ms is not below the shortest ack timeout ({ack_wait_ms} ms, from `ack_wait` or `backoff`)"
                )
            }
        }
    }

    /// A one-line hint on how to fix the value.
    pub fn help(&self) -> String {
        match (&self.kind, self.setting) {
            (SettingErrorKind::Zero, Setting::Concurrency) => {
                "use `1` to handle messages one at a time, in order".to_owned()
            }
            (SettingErrorKind::Zero, Setting::Batch) => "use `1` to pull one message at a time".to_owned(),
            (SettingErrorKind::Zero, Setting::MaxDeliver) => {
                "use `1` to deliver each message once; leave `max_deliver` out for no limit".to_owned()
            }
            (SettingErrorKind::Zero, Setting::MaxAckPending) => {
                "leave `max_ack_pending` out for the server's default (1000)".to_owned()
            }
            (SettingErrorKind::Zero, _) => "remove the option, or give a size such as `256`".to_owned(),
            (SettingErrorKind::BodyCaptureTooLarge { .. }, _) => {
                "record a prefix of the payload, e.g. `capture_body = 1024`".to_owned()
            }
            (SettingErrorKind::BackoffNotBelowMaxDeliver { delays, .. }, _) => {
                format!("raise `max_deliver` to at least {} or shorten `backoff`", delays.saturating_add(1))
            }
            (SettingErrorKind::ConcurrencyAboveMaxAckPending { .. }, _) => {
                "handlers beyond `max_ack_pending` would wait for messages the server will not send; lower `concurrency`"
                    .to_owned()
            }
            (SettingErrorKind::BatchesAboveMaxAckPending { concurrency, max_ack_pending, .. }, _) => {
                let fits = usize::try_from(*max_ack_pending).unwrap_or(usize::MAX) / (*concurrency).max(1);
                format!(
                    "the server stops delivering at `max_ack_pending` messages, so a batch past it never fills: \
                     use `batch_size = {fits}` or less, or raise `max_ack_pending`"
                )
            }
            (SettingErrorKind::BatchWaitNotBelowAckWait { .. }, _) => {
                "messages gathered into a batch wait unacknowledged: make `batch_wait` shorter than `ack_wait` and every `backoff` delay"
                    .to_owned()
            }
        }
    }
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for SettingError {}

/// Checks a count that must be at least 1 (`concurrency`, `batch`, and in the
/// macros `max_deliver` and `max_ack_pending`, whose runtime builders also take
/// NATS's `-1` for "unlimited").
///
/// ```
/// use nats_otel_rules::{Setting, validate_positive};
///
/// assert!(validate_positive(Setting::Batch, 1).is_ok());
/// assert_eq!(
///     validate_positive(Setting::Concurrency, 0).unwrap_err().message(),
///     "`concurrency` must be at least 1"
/// );
/// ```
pub fn validate_positive(setting: Setting, value: u64) -> Result<(), SettingError> {
    if value == 0 {
        return Err(SettingError::new(SettingErrorKind::Zero, setting));
    }
    Ok(())
}

/// Checks that `backoff` has fewer delays than `max_deliver` allows deliveries,
/// as nats-server requires; a `max_deliver` of 0 or below is unlimited.
/// Blames [`Setting::Backoff`].
///
/// ```
/// use nats_otel_rules::validate_backoff_against_max_deliver;
///
/// assert!(validate_backoff_against_max_deliver(3, 4).is_ok());
/// assert!(validate_backoff_against_max_deliver(3, -1).is_ok());
/// assert!(validate_backoff_against_max_deliver(3, 3).is_err());
/// ```
pub fn validate_backoff_against_max_deliver(delays: usize, max_deliver: i64) -> Result<(), SettingError> {
    let fits = max_deliver <= 0 || i64::try_from(delays).is_ok_and(|delays| delays < max_deliver);
    if fits {
        return Ok(());
    }
    Err(SettingError::new(
        SettingErrorKind::BackoffNotBelowMaxDeliver { delays, max_deliver },
        Setting::Backoff,
    ))
}

/// Checks that `concurrency` does not exceed `max_ack_pending`: the server
/// stops delivering at `max_ack_pending` unacknowledged messages, so handlers
/// beyond it would only wait. A `max_ack_pending` of 0 or below is unlimited.
/// Blames [`Setting::Concurrency`].
///
/// ```
/// use nats_otel_rules::validate_concurrency_against_max_ack_pending;
///
/// assert!(validate_concurrency_against_max_ack_pending(10, 10).is_ok());
/// assert!(validate_concurrency_against_max_ack_pending(10, -1).is_ok());
/// assert!(validate_concurrency_against_max_ack_pending(20, 10).is_err());
/// ```
pub fn validate_concurrency_against_max_ack_pending(
    concurrency: usize,
    max_ack_pending: i64,
) -> Result<(), SettingError> {
    let fits = max_ack_pending <= 0 || i64::try_from(concurrency).is_ok_and(|c| c <= max_ack_pending);
    if fits {
        return Ok(());
    }
    Err(SettingError::new(
        SettingErrorKind::ConcurrencyAboveMaxAckPending { concurrency, max_ack_pending },
        Setting::Concurrency,
    ))
}

/// nats-server's `max_ack_pending` for a consumer created without one.
pub const SERVER_DEFAULT_MAX_ACK_PENDING: i64 = 1000;

/// Checks that `concurrency` batches of `batch_size` fit in `max_ack_pending`
/// (`None`: the server's default, [`SERVER_DEFAULT_MAX_ACK_PENDING`]; 0 or
/// below: unlimited). Blames [`Setting::BatchSize`].
///
/// ```
/// use nats_otel_rules::validate_batches_against_max_ack_pending;
///
/// assert!(validate_batches_against_max_ack_pending(100, 2, Some(200)).is_ok());
/// assert!(validate_batches_against_max_ack_pending(100, 10, None).is_ok());
/// assert!(validate_batches_against_max_ack_pending(2000, 1, None).is_err());
/// let err = validate_batches_against_max_ack_pending(100, 3, Some(200)).unwrap_err();
/// assert_eq!(err.help(), "the server stops delivering at `max_ack_pending` messages, so a batch past it never fills: use `batch_size = 66` or less, or raise `max_ack_pending`");
/// ```
pub fn validate_batches_against_max_ack_pending(
    batch_size: usize,
    concurrency: usize,
    max_ack_pending: Option<i64>,
) -> Result<(), SettingError> {
    let max_ack_pending = max_ack_pending.unwrap_or(SERVER_DEFAULT_MAX_ACK_PENDING);
    let held = batch_size.saturating_mul(concurrency);
    let fits = max_ack_pending <= 0 || i64::try_from(held).is_ok_and(|held| held <= max_ack_pending);
    if fits {
        return Ok(());
    }
    Err(SettingError::new(
        SettingErrorKind::BatchesAboveMaxAckPending { batch_size, concurrency, max_ack_pending },
        Setting::BatchSize,
    ))
}

/// Checks that `batch_wait` is below the shortest ack timeout the server may
/// apply: `ack_wait` (`None`: the server's default of 30 s), or with a
/// `backoff` schedule its shortest entry (nats-server uses the entry for each
/// delivery instead). Blames [`Setting::BatchWait`].
///
/// ```
/// use std::time::Duration;
/// use nats_otel_rules::validate_batch_wait;
///
/// let ms = Duration::from_millis;
/// assert!(validate_batch_wait(ms(100), None, &[]).is_ok());
/// assert!(validate_batch_wait(ms(5000), Some(ms(5000)), &[]).is_err());
/// assert!(validate_batch_wait(ms(100), None, &[ms(50), ms(1000)]).is_err());
/// ```
pub fn validate_batch_wait(
    batch_wait: std::time::Duration,
    ack_wait: Option<std::time::Duration>,
    backoff: &[std::time::Duration],
) -> Result<(), SettingError> {
    let ack_wait = backoff
        .iter()
        .copied()
        .min()
        .unwrap_or_else(|| ack_wait.unwrap_or(std::time::Duration::from_secs(30)));
    if batch_wait < ack_wait {
        return Ok(());
    }
    Err(SettingError::new(
        SettingErrorKind::BatchWaitNotBelowAckWait {
            batch_wait_ms: batch_wait.as_millis(),
            ack_wait_ms: ack_wait.as_millis(),
        },
        Setting::BatchWait,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn positive_counts() {
        for setting in [Setting::Concurrency, Setting::Batch, Setting::MaxDeliver, Setting::MaxAckPending] {
            assert!(validate_positive(setting, 1).is_ok());
            assert!(validate_positive(setting, u64::MAX).is_ok());
            let err = validate_positive(setting, 0).unwrap_err();
            assert_eq!(err.kind, SettingErrorKind::Zero);
            assert_eq!(err.setting, setting);
            assert_eq!(err.message(), format!("`{}` must be at least 1", setting.name()));
            assert!(err.help().contains('`'), "{setting:?}: {}", err.help());
        }
        let body = validate_positive(Setting::CaptureBody, 0).unwrap_err();
        assert_eq!(body.message(), "`capture_body = 0` records nothing");
        assert_eq!(body.help(), "remove the option, or give a size such as `256`");
    }

    #[test]
    fn backoff_needs_max_deliver_above_its_length() {
        assert!(validate_backoff_against_max_deliver(0, 1).is_ok());
        assert!(validate_backoff_against_max_deliver(1, 2).is_ok());
        assert!(validate_backoff_against_max_deliver(1, 1).is_err());
        assert!(validate_backoff_against_max_deliver(5, 0).is_ok(), "0: the server's default, unlimited");
        assert!(validate_backoff_against_max_deliver(5, -1).is_ok(), "-1: unlimited");
        assert!(validate_backoff_against_max_deliver(usize::MAX, i64::MAX).is_err());
        let err = validate_backoff_against_max_deliver(3, 2).unwrap_err();
        assert_eq!(err.setting, Setting::Backoff);
        assert_eq!(err.to_string(), "3 backoff delays need `max_deliver` above 3, but it is 2");
        assert_eq!(err.help(), "raise `max_deliver` to at least 4 or shorten `backoff`");
    }

    #[test]
    fn concurrency_within_max_ack_pending() {
        assert!(validate_concurrency_against_max_ack_pending(1, 1).is_ok());
        assert!(validate_concurrency_against_max_ack_pending(usize::MAX, 0).is_ok());
        assert!(validate_concurrency_against_max_ack_pending(usize::MAX, i64::MAX).is_err());
        let err = validate_concurrency_against_max_ack_pending(20, 10).unwrap_err();
        assert_eq!(err.setting, Setting::Concurrency);
        assert_eq!(err.message(), "`concurrency = 20` exceeds `max_ack_pending = 10`");
    }
}
