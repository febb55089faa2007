//! Deadlines that never overflow, and the grammar of durations written as text.
//!
//! Durations come from users (`Wait::timeout`, `NETNS_TEST_TIMEOUT`, the attribute's
//! `timeout`, a topology file's delays), and `Instant + Duration` panics when the sum leaves
//! the clock's range: `Duration::MAX` does. Every deadline taken from such a duration goes
//! through [`later`], which treats any span beyond [`FOREVER`] as that long.

use std::time::{Duration, Instant};

/// The longest span a deadline is set for (about 30 years, as tokio's "far future"): a
/// longer wait means no deadline at all, and instants this close to now leave room for any
/// small span a caller adds later (a grace period, a timer's rounding).
pub(crate) const FOREVER: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// `span` after `at`, or [`FOREVER`] after it when `span` is longer.
pub(crate) fn later(at: Instant, span: Duration) -> Instant {
    at + span.min(FOREVER)
}

/// `span` from now; see [`later`].
pub(crate) fn deadline_after(span: Duration) -> Instant {
    later(Instant::now(), span)
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// The units a duration may be written in, as humantime names them, in nanoseconds.
fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "nanos" | "nsec" | "ns" => 1,
        "usec" | "us" | "µs" => 1_000,
        "millis" | "msec" | "ms" => 1_000_000,
        "seconds" | "second" | "secs" | "sec" | "s" => NANOS_PER_SEC,
        "minutes" | "minute" | "min" | "mins" | "m" => 60 * NANOS_PER_SEC,
        "hours" | "hour" | "hr" | "hrs" | "h" => 3_600 * NANOS_PER_SEC,
        "days" | "day" | "d" => 86_400 * NANOS_PER_SEC,
        "weeks" | "week" | "wk" | "wks" | "w" => 7 * 86_400 * NANOS_PER_SEC,
        // 30.44 and 365.25 days, as humantime counts them.
        "months" | "month" | "M" => 2_630_016 * NANOS_PER_SEC,
        "years" | "year" | "yr" | "yrs" | "y" => 31_557_600 * NANOS_PER_SEC,
        _ => return None,
    })
}

/// Parses a duration such as `"30s"`, `"1.5ms"`, `"2min"` or `"1h 30m"`: one or more numbers,
/// each with a unit, added up. The units are humantime's (ns, us, ms, s, m, h, d, w, M, y and
/// their long forms). Unlike `humantime::parse_duration`, which panics on some sums near
/// `Duration::MAX`, a duration too long to represent is an error, as is any fraction of a
/// nanosecond.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "`{text}` is not a duration; write numbers with a unit, e.g. \"30s\", \"1.5ms\" or \"1m 30s\""
        )
    };
    let too_long = || format!("`{text}` is too long for a duration (at most {} s)", u64::MAX);
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() || (number.contains('.') && fraction.is_empty()) || fraction.contains('.') {
            return Err(invalid());
        }
        let after = after.trim_start();
        let unit_len = after.find(|c: char| !c.is_alphabetic()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = unit_nanos(unit).ok_or_else(invalid)?;
        // Digits beyond u128 are far beyond any duration: too long, not malformed.
        let whole: u128 = whole.parse().map_err(|_| too_long())?;
        let mut nanos = whole.checked_mul(scale).ok_or_else(too_long)?;
        let fraction = fraction.trim_end_matches('0');
        if !fraction.is_empty() {
            // Twenty decimals are finer than a nanosecond of the longest unit, and keep the
            // arithmetic below within u128.
            if fraction.len() > 20 {
                return Err(format!("`{text}` has more decimals than a nanosecond needs"));
            }
            let denominator = 10u128.pow(fraction.len() as u32);
            let numerator: u128 = fraction.parse().map_err(|_| invalid())?;
            let part = numerator * scale;
            if part % denominator != 0 {
                return Err(format!("`{text}` is finer than a nanosecond"));
            }
            nanos = nanos.checked_add(part / denominator).ok_or_else(too_long)?;
        }
        total = total.checked_add(nanos).ok_or_else(too_long)?;
        rest = after.trim_start();
    }
    let seconds = u64::try_from(total / NANOS_PER_SEC).map_err(|_| too_long())?;
    Ok(Duration::new(seconds, (total % NANOS_PER_SEC) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_beyond_forever_saturate() {
        let now = Instant::now();
        assert_eq!(later(now, Duration::MAX), now + FOREVER);
        assert_eq!(later(now, Duration::from_secs(5)), now + Duration::from_secs(5));
        // The saturated instant leaves room for what callers add to it.
        let _ = deadline_after(Duration::MAX) + Duration::from_secs(3600);
    }

    #[test]
    fn parses_humantime_s_words_and_decimals() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("30s"), Ok(ms(30_000)));
        assert_eq!(parse_duration(" 90s "), Ok(ms(90_000)));
        assert_eq!(parse_duration("1m 30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("2min"), Ok(ms(120_000)));
        assert_eq!(parse_duration("1 hour"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("1.5ms"), Ok(Duration::from_micros(1500)));
        assert_eq!(parse_duration("0.1s"), Ok(ms(100)));
        assert_eq!(parse_duration("250µs"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1y"), Ok(Duration::from_secs(31_557_600)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for text in ["", "30", "s", "fast", "3x", "1.s", ".5s", "1..5s", "1.5.5s", "-1s", "1e3s", "30s,"] {
            let error = parse_duration(text).expect_err(text);
            assert!(error.contains("is not a duration"), "{text}: {error}");
        }
        assert!(parse_duration("1.5ns").unwrap_err().contains("finer than a nanosecond"));
        assert!(parse_duration("0.123456789012345678901s").unwrap_err().contains("more decimals"));
        assert_eq!(parse_duration("1.500000000000000000000000s"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn huge_durations_are_errors_or_exact_never_panics() {
        // humantime 2.4 panics on the second one ("overflow in Duration::new").
        assert_eq!(parse_duration("400000000000y"), Ok(Duration::from_secs(400_000_000_000 * 31_557_600)));
        assert_eq!(parse_duration("18446744073709551615s 999999999ns"), Ok(Duration::MAX));
        for text in [
            "18446744073709551615s 1000ms",
            "18446744073709551616s",
            "600000000000y",
            "99999999999999999999999999999999999999999999h",
            "340282366920938463463374607431768211455y",
        ] {
            let error = parse_duration(text).expect_err(text);
            assert!(error.contains("is too long for a duration"), "{text}: {error}");
        }
    }
}
