//! Deadlines that never overflow, and the one grammar of durations written as text.
//!
//! Durations come from users (`Wait::timeout`, `NETNS_TEST_TIMEOUT`, the attribute's
//! `timeout`, a topology file's delays), and `Instant + Duration` panics when the sum leaves
//! the clock's range: `Duration::MAX` does. Every deadline taken from such a duration goes
//! through [`later`], which treats any span beyond [`FOREVER`] as that long.
//!
//! Text becomes a duration in [`parse`] only, a `const fn`: the settings and the topology
//! file call it at runtime, and the attribute's `timeout = "..."` expands into a constant that
//! the compiler evaluates with it, so a duration the attribute refuses is one every other
//! place refuses too.

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
const UNITS: [(&str, u128); 40] = [
    ("nanos", 1),
    ("nsec", 1),
    ("ns", 1),
    ("usec", 1_000),
    ("us", 1_000),
    ("µs", 1_000),
    ("millis", 1_000_000),
    ("msec", 1_000_000),
    ("ms", 1_000_000),
    ("seconds", NANOS_PER_SEC),
    ("second", NANOS_PER_SEC),
    ("secs", NANOS_PER_SEC),
    ("sec", NANOS_PER_SEC),
    ("s", NANOS_PER_SEC),
    ("minutes", 60 * NANOS_PER_SEC),
    ("minute", 60 * NANOS_PER_SEC),
    ("min", 60 * NANOS_PER_SEC),
    ("mins", 60 * NANOS_PER_SEC),
    ("m", 60 * NANOS_PER_SEC),
    ("hours", 3_600 * NANOS_PER_SEC),
    ("hour", 3_600 * NANOS_PER_SEC),
    ("hr", 3_600 * NANOS_PER_SEC),
    ("hrs", 3_600 * NANOS_PER_SEC),
    ("h", 3_600 * NANOS_PER_SEC),
    ("days", 86_400 * NANOS_PER_SEC),
    ("day", 86_400 * NANOS_PER_SEC),
    ("d", 86_400 * NANOS_PER_SEC),
    ("weeks", 7 * 86_400 * NANOS_PER_SEC),
    ("week", 7 * 86_400 * NANOS_PER_SEC),
    ("wk", 7 * 86_400 * NANOS_PER_SEC),
    ("wks", 7 * 86_400 * NANOS_PER_SEC),
    ("w", 7 * 86_400 * NANOS_PER_SEC),
    // 30.44 and 365.25 days, as humantime counts them.
    ("months", 2_630_016 * NANOS_PER_SEC),
    ("month", 2_630_016 * NANOS_PER_SEC),
    ("M", 2_630_016 * NANOS_PER_SEC),
    ("years", 31_557_600 * NANOS_PER_SEC),
    ("year", 31_557_600 * NANOS_PER_SEC),
    ("yr", 31_557_600 * NANOS_PER_SEC),
    ("yrs", 31_557_600 * NANOS_PER_SEC),
    ("y", 31_557_600 * NANOS_PER_SEC),
];

/// What is wrong with a duration written as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DurationError {
    /// Not numbers with units.
    NotADuration,
    /// Longer than `Duration::MAX`.
    TooLong,
    /// More decimals than any unit needs to reach a nanosecond.
    TooManyDecimals,
    /// A fraction of a nanosecond.
    FinerThanNanosecond,
    /// Zero, where a timeout is asked for.
    Zero,
}

/// Each error's message twice from one text: after the duration as written (at runtime, where
/// the text can be formatted in), and whole, for the attribute's compile-time evaluation (a
/// panic in a constant may only carry a `&'static str`; the compiler points at the literal).
macro_rules! duration_messages {
    ($($variant:ident => $text:literal,)*) => {
        impl DurationError {
            /// What is wrong, said of the text: "`<text>` is not a duration; ...".
            pub(crate) fn message(self, text: &str) -> String {
                match self {
                    $(DurationError::$variant => format!(concat!("`{}` ", $text), text),)*
                }
            }

            /// What is wrong with the attribute's `timeout`, in one constant string.
            pub(crate) const fn timeout_message(self) -> &'static str {
                match self {
                    $(DurationError::$variant => concat!("invalid timeout: the text ", $text),)*
                }
            }
        }
    };
}

duration_messages! {
    NotADuration => "is not a duration; write numbers with a unit, e.g. \"30s\", \"1.5ms\" or \"1m 30s\"",
    TooLong => "is too long for a duration (at most 18446744073709551615 s)",
    TooManyDecimals => "has more decimals than a nanosecond needs",
    FinerThanNanosecond => "is finer than a nanosecond",
    Zero => "is zero; a timeout must be greater than zero",
}

const fn is_space(byte: u8) -> bool {
    byte.is_ascii_whitespace()
}

/// A unit's letters: ASCII letters, or the bytes of a non-ASCII character (`µ`).
const fn is_unit_byte(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte >= 0x80
}

/// Whether `bytes[start..end]` is `word`.
const fn equals(bytes: &[u8], start: usize, end: usize, word: &str) -> bool {
    let word = word.as_bytes();
    if end - start != word.len() {
        return false;
    }
    let mut i = 0;
    while i < word.len() {
        if bytes[start + i] != word[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The nanoseconds of the unit `bytes[start..end]`.
const fn unit_nanos(bytes: &[u8], start: usize, end: usize) -> Option<u128> {
    let mut i = 0;
    while i < UNITS.len() {
        if equals(bytes, start, end, UNITS[i].0) {
            return Some(UNITS[i].1);
        }
        i += 1;
    }
    None
}

/// The decimal number `bytes[start..end]` (digits only), or `None` beyond `u128`.
const fn number(bytes: &[u8], start: usize, end: usize) -> Option<u128> {
    let mut value: u128 = 0;
    let mut i = start;
    while i < end {
        let digit = (bytes[i] - b'0') as u128;
        value = match value.checked_mul(10) {
            Some(value) => match value.checked_add(digit) {
                Some(value) => value,
                None => return None,
            },
            None => return None,
        };
        i += 1;
    }
    Some(value)
}

/// The grammar of every duration written as text: `NETNS_TEST_TIMEOUT` and
/// `NETNS_TEST_KEEP_ON_FAILURE`, a topology file's delays, and the attribute's `timeout`, which
/// the compiler evaluates with this very function (hence `const`).
///
/// One or more numbers, each with a unit, added up: `"30s"`, `"1.5ms"`, `"2min"`, `"1h 30m"`,
/// `"1m30s"`. A number is digits with an optional fraction (`1.5`, not `1.` or `.5`); space
/// may separate a number from its unit and the parts from each other. The units are
/// humantime's (ns, us/µs, ms, s, m, h, d, w, M, y and their long forms). Unlike
/// `humantime::parse_duration`, which panics on some sums near `Duration::MAX`, a duration too
/// long to represent is an error, as is any fraction of a nanosecond.
pub(crate) const fn parse(text: &str) -> Result<Duration, DurationError> {
    let bytes = text.as_bytes();
    let mut end = bytes.len();
    while end > 0 && is_space(bytes[end - 1]) {
        end -= 1;
    }
    let mut at = 0;
    while at < end && is_space(bytes[at]) {
        at += 1;
    }
    if at == end {
        return Err(DurationError::NotADuration);
    }
    let mut total: u128 = 0;
    while at < end {
        let whole_start = at;
        while at < end && bytes[at].is_ascii_digit() {
            at += 1;
        }
        let whole_end = at;
        if whole_start == whole_end {
            return Err(DurationError::NotADuration);
        }
        let (mut fraction_start, mut fraction_end) = (at, at);
        if at < end && bytes[at] == b'.' {
            at += 1;
            fraction_start = at;
            while at < end && bytes[at].is_ascii_digit() {
                at += 1;
            }
            fraction_end = at;
            if fraction_start == fraction_end {
                return Err(DurationError::NotADuration);
            }
        }
        while at < end && is_space(bytes[at]) {
            at += 1;
        }
        let unit_start = at;
        while at < end && is_unit_byte(bytes[at]) {
            at += 1;
        }
        let Some(scale) = unit_nanos(bytes, unit_start, at) else {
            return Err(DurationError::NotADuration);
        };
        // Digits beyond u128 are far beyond any duration: too long, not malformed.
        let Some(whole) = number(bytes, whole_start, whole_end) else {
            return Err(DurationError::TooLong);
        };
        let Some(mut nanos) = whole.checked_mul(scale) else {
            return Err(DurationError::TooLong);
        };
        // Trailing zeros of the fraction say nothing.
        while fraction_end > fraction_start && bytes[fraction_end - 1] == b'0' {
            fraction_end -= 1;
        }
        if fraction_end > fraction_start {
            let decimals = fraction_end - fraction_start;
            // Twenty decimals are finer than a nanosecond of the longest unit, and keep the
            // arithmetic below within u128.
            if decimals > 20 {
                return Err(DurationError::TooManyDecimals);
            }
            let denominator = 10u128.pow(decimals as u32);
            let Some(numerator) = number(bytes, fraction_start, fraction_end) else {
                return Err(DurationError::NotADuration);
            };
            let part = numerator * scale;
            if part % denominator != 0 {
                return Err(DurationError::FinerThanNanosecond);
            }
            nanos = match nanos.checked_add(part / denominator) {
                Some(nanos) => nanos,
                None => return Err(DurationError::TooLong),
            };
        }
        total = match total.checked_add(nanos) {
            Some(total) => total,
            None => return Err(DurationError::TooLong),
        };
        while at < end && is_space(bytes[at]) {
            at += 1;
        }
    }
    let seconds = total / NANOS_PER_SEC;
    if seconds > u64::MAX as u128 {
        return Err(DurationError::TooLong);
    }
    Ok(Duration::new(seconds as u64, (total % NANOS_PER_SEC) as u32))
}

/// [`parse`] for a timeout, which must be longer than zero.
pub(crate) const fn parse_timeout(text: &str) -> Result<Duration, DurationError> {
    match parse(text) {
        Ok(duration) if duration.is_zero() => Err(DurationError::Zero),
        result => result,
    }
}

/// [`parse`], with the error said of the text.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    parse(text).map_err(|error| error.message(text))
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

    #[test]
    fn the_grammar_runs_at_compile_time() {
        const NINETY: Result<Duration, DurationError> = parse("1m 30s");
        const FAST: Result<Duration, DurationError> = parse("fast");
        const MICROS: Result<Duration, DurationError> = parse("1.5 µs");
        assert_eq!(NINETY, Ok(Duration::from_secs(90)));
        assert_eq!(FAST, Err(DurationError::NotADuration));
        assert_eq!(MICROS, Ok(Duration::from_nanos(1500)));
    }

    #[test]
    fn timeouts_are_longer_than_zero() {
        for text in ["0s", "0ms 0s", "0.000ns"] {
            assert_eq!(parse_timeout(text), Err(DurationError::Zero), "{text}");
        }
        assert_eq!(parse_timeout("1ns"), Ok(Duration::from_nanos(1)));
        assert_eq!(parse_timeout("fast"), Err(DurationError::NotADuration));
    }

    #[test]
    fn both_messages_say_the_same() {
        for error in [
            DurationError::NotADuration,
            DurationError::TooLong,
            DurationError::TooManyDecimals,
            DurationError::FinerThanNanosecond,
            DurationError::Zero,
        ] {
            let runtime = error.message("x");
            let predicate = runtime.strip_prefix("`x` ").expect("the text comes first");
            assert_eq!(error.timeout_message(), format!("invalid timeout: the text {predicate}"));
        }
        assert_eq!(
            DurationError::TooLong.message("9y"),
            format!("`9y` is too long for a duration (at most {} s)", u64::MAX)
        );
    }
}
