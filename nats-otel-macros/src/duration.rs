//! Duration literals for macro options: `"250ms"`, `"30s"`, `"5m"`, `"1h30m"`.

use std::ops::Range;

/// A duration written in an option, as the nanoseconds the runtime gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Duration {
    nanos: u64,
}

/// Why a duration literal does not parse, and which bytes of it are wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DurationError {
    pub(crate) message: String,
    pub(crate) range: Range<usize>,
}

impl Duration {
    /// The help every duration error shows.
    pub(crate) const HELP: &'static str = "write a number with a unit: `\"250ms\"`, `\"30s\"`, `\"5m\"`, `\"1h30m\"` (units: ns, us, ms, s, m, h)";

    pub(crate) fn as_nanos(self) -> u64 {
        self.nanos
    }

    pub(crate) fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.nanos)
    }

    /// Parses `text`: one or more `<number><unit>` parts, added up.
    pub(crate) fn parse(text: &str) -> Result<Self, DurationError> {
        let fail = |message: String, range: Range<usize>| Err(DurationError { message, range });
        if text.is_empty() {
            return fail("empty duration".to_owned(), 0..0);
        }
        let bytes = text.as_bytes();
        let mut total: u64 = 0;
        let mut i = 0;
        while i < bytes.len() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return fail(format!("expected a number at `{}`", &text[start..]), start..text.len());
            }
            let Ok(number) = text[start..i].parse::<u64>() else {
                return fail("number too large".to_owned(), start..i);
            };
            let unit_start = i;
            while i < bytes.len() && !bytes[i].is_ascii_digit() {
                i += 1;
            }
            let scale: u64 = match &text[unit_start..i] {
                "ns" => 1,
                "us" | "µs" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                "" => return fail(format!("`{number}` needs a unit"), start..i),
                other => return fail(format!("unknown unit `{other}`"), unit_start..i),
            };
            match number.checked_mul(scale).and_then(|n| total.checked_add(n)) {
                Some(sum) => total = sum,
                None => return fail("duration too large".to_owned(), start..i),
            }
        }
        Ok(Self { nanos: total })
    }
}

#[cfg(test)]
mod tests {
    use super::Duration;

    fn nanos(text: &str) -> Result<u64, std::ops::Range<usize>> {
        Duration::parse(text).map(Duration::as_nanos).map_err(|e| e.range)
    }

    #[test]
    fn durations() {
        assert_eq!(nanos("250ms"), Ok(250_000_000));
        assert_eq!(nanos("30s"), Ok(30_000_000_000));
        assert_eq!(nanos("5m"), Ok(300_000_000_000));
        assert_eq!(nanos("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(nanos("10us"), Ok(10_000));
        assert_eq!(nanos("10µs"), Ok(10_000));
        assert_eq!(nanos("1ns"), Ok(1));
    }

    #[test]
    fn errors_point_at_the_bad_part() {
        assert_eq!(nanos(""), Err(0..0));
        assert_eq!(nanos("10"), Err(0..2));
        assert_eq!(nanos("s"), Err(0..1));
        assert_eq!(nanos("10 s"), Err(2..4));
        assert_eq!(nanos("1s5"), Err(2..3));
        assert!(nanos("5 minutes").is_err());
        assert_eq!(nanos("99999999999999999999h"), Err(0..20));
        assert_eq!(nanos("9999999999h"), Err(0..11));
        let error = Duration::parse("30 seconds").err();
        assert_eq!(error.map(|e| e.message), Some("unknown unit ` seconds`".to_owned()));
    }
}
