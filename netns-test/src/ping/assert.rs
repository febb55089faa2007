//! Assertions on a ping's outcome that fail with iputils' summary, and the errors that came
//! back, in the panic message.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::time::Duration;

use super::stats::PingStats;

/// At most this many error lines are quoted in a failure message.
const QUOTED_ERRORS: usize = 5;

impl PingStats {
    /// Asserts that at least one probe was answered.
    ///
    /// # Panics
    /// When no reply came back; the message holds the summary and the errors received.
    #[track_caller]
    pub fn assert_reachable(&self) -> &Self {
        if !self.is_reachable() {
            self.fail("expected a reply, but none came back");
        }
        self
    }

    /// Asserts that probes were sent and none was answered.
    ///
    /// # Panics
    /// When a reply came back.
    #[track_caller]
    pub fn assert_unreachable(&self) -> &Self {
        if self.transmitted() == 0 {
            self.fail("expected no reply, but no probe was sent");
        }
        if self.is_reachable() {
            self.fail(&format!(
                "expected no reply, but {} of {} probes were answered",
                self.received(),
                self.transmitted()
            ));
        }
        self
    }

    /// Asserts that the loss, as a fraction from 0.0 to 1.0, is at most `fraction`:
    /// `assert_loss_at_most(0.0)` wants every probe answered, `0.1` tolerates one in ten lost.
    ///
    /// # Panics
    /// When more probes were lost.
    #[track_caller]
    pub fn assert_loss_at_most(&self, fraction: f64) -> &Self {
        // A NaN bound is incomparable: it fails, with its value in the message.
        let within = matches!(self.loss().partial_cmp(&fraction), Some(Ordering::Less | Ordering::Equal));
        if !within {
            self.fail(&format!(
                "expected at most {}% packet loss, got {}%",
                percent(fraction),
                percent(self.loss())
            ));
        }
        self
    }

    /// Asserts that the average RTT (over all replies, duplicates included) is at most `max`.
    ///
    /// # Panics
    /// When it is larger, or no reply came back.
    #[track_caller]
    pub fn assert_rtt_at_most(&self, max: Duration) -> &Self {
        match self.rtt_avg() {
            None => self.fail(&format!("expected an average RTT of at most {max:?}, but no reply came back")),
            Some(avg) if avg > max => {
                self.fail(&format!("expected an average RTT of at most {max:?}, got {avg:?}"))
            }
            Some(_) => {}
        }
        self
    }

    /// Asserts that the `percentile`-th percentile (0 to 100, nearest rank, see
    /// [`rtt_percentile`](Self::rtt_percentile)) of the RTTs is at most `max`:
    /// `assert_rtt_percentile_at_most(99.0, ms(5))` wants 99 % of the replies within 5 ms.
    ///
    /// # Panics
    /// When it is larger, no reply came back, or `percentile` is outside 0..=100.
    #[track_caller]
    pub fn assert_rtt_percentile_at_most(&self, percentile: f64, max: Duration) -> &Self {
        if !(0.0..=100.0).contains(&percentile) {
            self.fail(&format!("the percentile must be within 0..=100, got {percentile}"));
        }
        match self.rtt_percentile(percentile) {
            None => self.fail(&format!(
                "expected a {percentile}th-percentile RTT of at most {max:?}, but no reply came back"
            )),
            Some(value) if value > max => self
                .fail(&format!("expected a {percentile}th-percentile RTT of at most {max:?}, got {value:?}")),
            Some(_) => {}
        }
        self
    }

    /// The failure message: what was expected, the summary, and the errors received.
    pub(crate) fn failure(&self, expectation: &str) -> String {
        let mut message =
            format!("ping from node `{}` to {}: {expectation}\n{self}", self.node(), self.addr());
        let errors: Vec<String> = self.probes().iter().filter_map(|probe| probe.error_line()).collect();
        if !errors.is_empty() {
            message.push('\n');
            for line in errors.iter().take(QUOTED_ERRORS) {
                let _ = write!(message, "\n{line}");
            }
            if errors.len() > QUOTED_ERRORS {
                let _ = write!(message, "\n... and {} more", errors.len() - QUOTED_ERRORS);
            }
        }
        message
    }

    #[track_caller]
    fn fail(&self, expectation: &str) -> ! {
        panic!("{}", self.failure(expectation))
    }
}

/// A fraction as a percentage, without float noise (`0.1` prints as `10`, not
/// `10.000000000000002`).
fn percent(fraction: f64) -> String {
    let value = (fraction * 100.0 * 1e6).round() / 1e6;
    format!("{value}")
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::ping::icmp::IcmpErrorKind;
    use crate::ping::stats::{Counters, IcmpError, Probe, ProbeError, Reply};

    fn stats(rtts: &[Option<u64>]) -> PingStats {
        let target = IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1));
        let probes: Vec<Probe> = rtts
            .iter()
            .enumerate()
            .map(|(i, rtt)| Probe {
                seq: i as u16 + 1,
                sent: Duration::ZERO,
                reply: rtt.map(|micros| Reply {
                    from: target,
                    ttl: Some(64),
                    rtt: Duration::from_micros(micros),
                    bytes: 64,
                }),
                duplicates: Vec::new(),
                error: rtt.is_none().then(|| {
                    ProbeError::Icmp(IcmpError {
                        from: IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)),
                        kind: IcmpErrorKind::TimeExceeded,
                        code: 0,
                        mtu: None,
                    })
                }),
            })
            .collect();
        let received = rtts.iter().flatten().count() as u64;
        let counters = Counters {
            transmitted: probes.len() as u64,
            received,
            duplicates: 0,
            corrupted: 0,
            errors: probes.len() as u64 - received,
            time: Duration::ZERO,
            ewma_x8: 0,
        };
        PingStats::new("test0".into(), "1.1.1.1".into(), target, 56, false, counters, probes)
    }

    fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
        let payload = std::panic::catch_unwind(f).expect_err("the assertion should fail");
        payload.downcast_ref::<String>().cloned().unwrap_or_default()
    }

    #[test]
    fn passing_assertions_chain() {
        let all = stats(&[Some(100), Some(300)]);
        all.assert_reachable()
            .assert_loss_at_most(0.0)
            .assert_rtt_at_most(Duration::from_micros(200))
            .assert_rtt_percentile_at_most(50.0, Duration::from_micros(100));
        stats(&[None, None]).assert_unreachable().assert_loss_at_most(1.0);
    }

    #[test]
    fn failures_carry_the_summary_and_the_errors() {
        let message = panic_message(|| {
            stats(&[None, None]).assert_reachable();
        });
        assert!(
            message.starts_with("ping from node `test0` to 1.1.1.1: expected a reply, but none came back\n"),
            "{message}"
        );
        assert!(
            message.contains("--- 1.1.1.1 ping statistics ---\n2 packets transmitted, 0 received, +2 errors"),
            "{message}"
        );
        assert!(message.contains("\nFrom 10.0.1.1 icmp_seq=2 Time to live exceeded"), "{message}");
    }

    #[test]
    fn each_assertion_fails_when_it_should() {
        let lossy = stats(&[Some(100), None, Some(900), Some(100)]);
        let message = panic_message(|| {
            lossy.assert_loss_at_most(0.1);
        });
        assert!(message.contains("expected at most 10% packet loss, got 25%"), "{message}");
        let message = panic_message(|| {
            lossy.assert_rtt_at_most(Duration::from_micros(300));
        });
        assert!(message.contains("expected an average RTT of at most 300µs, got 366.666µs"), "{message}");
        let message = panic_message(|| {
            lossy.assert_rtt_percentile_at_most(90.0, Duration::from_micros(500));
        });
        assert!(message.contains("got 900µs"), "{message}");
        let message = panic_message(|| {
            lossy.assert_unreachable();
        });
        assert!(message.contains("expected no reply, but 3 of 4 probes were answered"), "{message}");
        let message = panic_message(|| {
            lossy.assert_rtt_percentile_at_most(120.0, Duration::from_secs(1));
        });
        assert!(message.contains("the percentile must be within 0..=100, got 120"), "{message}");
        let message = panic_message(|| {
            stats(&[None]).assert_rtt_at_most(Duration::from_secs(1));
        });
        assert!(message.contains("but no reply came back"), "{message}");
    }
}
