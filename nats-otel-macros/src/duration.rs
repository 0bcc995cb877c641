//! Duration literals for macro options: `"250ms"`, `"30s"`, `"5m"`, `"1h30m"`.

use std::ops::Range;

/// Parses `text` into nanoseconds, or says which part is wrong (a byte range).
pub(crate) fn parse(text: &str) -> Result<u64, (String, Range<usize>)> {
    if text.is_empty() {
        return Err(("empty duration".to_owned(), 0..0));
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
            return Err((format!("expected a number at `{}`", &text[start..]), start..text.len()));
        }
        let number: u64 = text[start..i].parse().map_err(|_| ("number too large".to_owned(), start..i))?;
        let unit_start = i;
        while i < bytes.len() && !bytes[i].is_ascii_digit() {
            i += 1;
        }
        let unit = &text[unit_start..i];
        let scale: u64 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err((format!("`{number}` needs a unit"), start..i)),
            other => return Err((format!("unknown unit `{other}`"), unit_start..i)),
        };
        total = number
            .checked_mul(scale)
            .and_then(|n| total.checked_add(n))
            .ok_or_else(|| ("duration too large".to_owned(), start..i))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn durations() {
        assert_eq!(parse("250ms"), Ok(250_000_000));
        assert_eq!(parse("30s"), Ok(30_000_000_000));
        assert_eq!(parse("5m"), Ok(300_000_000_000));
        assert_eq!(parse("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse("10us"), Ok(10_000));
        assert!(parse("").is_err());
        assert!(parse("10").is_err());
        assert!(parse("s").is_err());
        assert_eq!(parse("10 s").map_err(|e| e.1), Err(2..4));
        assert!(parse("5 minutes").is_err());
        assert!(parse("99999999999999999999h").is_err());
    }
}
