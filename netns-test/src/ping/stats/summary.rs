//! iputils' text: the transcript of replies (`{:#}`) and the summary block that `ping` prints
//! when it ends.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use super::PingStats;

impl PingStats {
    /// Writes the header line and one line per reply or error, as iputils prints them.
    fn fmt_transcript(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            IpAddr::V4(_) => writeln!(
                f,
                "PING {} ({}) {}({}) bytes of data.",
                self.target,
                self.addr,
                self.size,
                self.size + 28
            )?,
            IpAddr::V6(_) => writeln!(f, "PING {}({}) {} data bytes", self.target, self.addr, self.size)?,
        }
        for probe in &self.probes {
            let replies =
                probe.reply.iter().map(|r| (r, false)).chain(probe.duplicates.iter().map(|r| (r, true)));
            for (reply, duplicate) in replies {
                write!(f, "{} bytes from {}: icmp_seq={}", reply.bytes, reply.from, probe.seq)?;
                if let Some(ttl) = reply.ttl {
                    write!(f, " ttl={ttl}")?;
                }
                write!(f, " time={}", ReplyTime(reply.rtt))?;
                writeln!(f, "{}", if duplicate { " (DUP!)" } else { "" })?;
            }
            if let Some(line) = probe.error_line() {
                writeln!(f, "{line}")?;
            }
        }
        writeln!(f)
    }
}

impl fmt::Display for PingStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            self.fmt_transcript(f)?;
        }
        writeln!(f, "--- {} ping statistics ---", self.target)?;
        write!(f, "{} packets transmitted, {} received", self.transmitted, self.received)?;
        if self.duplicates > 0 {
            write!(f, ", +{} duplicates", self.duplicates)?;
        }
        if self.corrupted > 0 {
            write!(f, ", +{} corrupted", self.corrupted)?;
        }
        if self.errors > 0 {
            write!(f, ", +{} errors", self.errors)?;
        }
        if self.transmitted > 0 {
            // iputils computes the percentage in single precision and prints it with %g.
            let percent =
                ((self.transmitted - self.received) as f64 * 100.0 / self.transmitted as f64) as f32;
            write!(
                f,
                ", {}% packet loss, time {}ms",
                FormatG(f64::from(percent)),
                rounded_millis(self.time)
            )?;
        }
        let mut separator = "\n";
        if let Some(rtt) = self.rtt {
            write!(
                f,
                "{separator}rtt min/avg/max/mdev = {}/{}/{}/{} ms",
                Millis(rtt.min),
                Millis(rtt.avg),
                Millis(rtt.max),
                Millis(rtt.mdev)
            )?;
            separator = ", ";
        }
        if self.received > 0 && self.flood && self.transmitted > 1 {
            let ipg = Duration::from_micros(self.time.as_micros() as u64 / (self.transmitted - 1));
            let ewma = Duration::from_micros(self.ewma_x8 / 8);
            write!(f, "{separator}ipg/ewma {}/{} ms", Millis(ipg), Millis(ewma))?;
        }
        Ok(())
    }
}

/// iputils' `time %ldms`: milliseconds, rounded.
fn rounded_millis(duration: Duration) -> u128 {
    (duration.as_nanos() + 500_000) / 1_000_000
}

/// iputils' `%ld.%03ld` milliseconds: microseconds, truncated, with three decimals.
struct Millis(Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.0.as_micros();
        write!(f, "{}.{:03}", micros / 1000, micros % 1000)
    }
}

/// iputils' per-reply `time=`: fewer decimals as the RTT grows.
pub(super) struct ReplyTime(pub(super) Duration);

impl fmt::Display for ReplyTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0.as_micros();
        if t >= 100_000 - 50 {
            write!(f, "{} ms", (t + 500) / 1000)
        } else if t >= 10_000 - 5 {
            write!(f, "{}.{:01} ms", (t + 50) / 1000, ((t + 50) % 1000) / 100)
        } else if t >= 1000 {
            write!(f, "{}.{:02} ms", (t + 5) / 1000, ((t + 5) % 1000) / 10)
        } else {
            write!(f, "{}.{:03} ms", t / 1000, t % 1000)
        }
    }
}

/// C's `%g`: six significant digits, trailing zeros removed, scientific notation for very
/// large or small magnitudes.
pub(super) struct FormatG(pub(super) f64);

impl fmt::Display for FormatG {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.0;
        if value == 0.0 || !value.is_finite() {
            return write!(f, "{value}");
        }
        // The exponent after rounding to six significant digits decides the notation.
        let scientific = format!("{value:.5e}");
        let (mantissa, exponent) = scientific.split_once('e').expect("{:e} has an exponent");
        let exponent: i32 = exponent.parse().expect("{:e} exponent is an integer");
        let trim = |text: &str| -> String {
            if text.contains('.') {
                text.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                text.to_string()
            }
        };
        if (-4..6).contains(&exponent) {
            let decimals = (5 - exponent) as usize;
            f.write_str(&trim(&format!("{value:.decimals$}")))
        } else {
            let sign = if exponent < 0 { '-' } else { '+' };
            write!(f, "{}e{sign}{:02}", trim(mantissa), exponent.abs())
        }
    }
}
