//! What a pinger saw: per-probe records and the statistics iputils prints.
//!
//! The figures mean exactly what iputils' mean: `received` counts probes answered at least once
//! (duplicates are counted apart and do not lower the loss), loss is
//! `(transmitted - received) / transmitted`, and the RTT figures cover every reply, duplicates
//! included, with `mdev` the population standard deviation. RTTs are kept in nanoseconds (from
//! the kernel's `SO_TIMESTAMPNS` receive time) and printed in iputils' microsecond format.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use super::wire::{self, Family, IcmpErrorKind};

/// One reply to a probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub(crate) from: IpAddr,
    pub(crate) ttl: Option<u8>,
    pub(crate) rtt: Duration,
    pub(crate) bytes: usize,
}

impl Reply {
    /// The address the reply came from.
    pub fn from(&self) -> IpAddr {
        self.from
    }

    /// The TTL (IPv4) or hop limit (IPv6) the reply arrived with.
    pub fn ttl(&self) -> Option<u8> {
        self.ttl
    }

    /// Round-trip time: from just before the probe was sent to the kernel's receive timestamp
    /// of the reply.
    pub fn rtt(&self) -> Duration {
        self.rtt
    }

    /// The ICMP message length, header included (iputils' "64 bytes from").
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// An ICMP error that answered a probe, and the address that sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IcmpError {
    pub(crate) from: IpAddr,
    pub(crate) kind: IcmpErrorKind,
    pub(crate) code: u8,
    pub(crate) mtu: Option<u32>,
}

impl IcmpError {
    /// The address of the router or host that sent the error.
    pub fn from(&self) -> IpAddr {
        self.from
    }

    /// What kind of error it is.
    pub fn kind(&self) -> IcmpErrorKind {
        self.kind
    }

    /// The ICMP code, which refines the kind (e.g. 1 = host unreachable for IPv4).
    pub fn code(&self) -> u8 {
        self.code
    }

    /// The next-hop MTU, for [`PacketTooBig`](IcmpErrorKind::PacketTooBig) (IPv6) and
    /// [`FragmentationNeeded`](IcmpErrorKind::FragmentationNeeded) (IPv4); `None` for other
    /// kinds, and for an IPv4 router that left it out.
    pub fn mtu(&self) -> Option<u32> {
        self.mtu
    }
}

impl fmt::Display for IcmpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "From {} ", self.from)?;
        wire::describe(f, Family::of(self.from), self.kind, self.code, self.mtu)
    }
}

/// Why a probe got no reply, when something said why.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProbeError {
    /// An ICMP error came back (time exceeded, destination unreachable, ...).
    Icmp(IcmpError),
    /// The kernel refused to send the probe, e.g. `ENETUNREACH` when no route leads to the
    /// target. iputils counts such a probe as transmitted, and so does this pinger.
    Send {
        /// The error number (`errno`) the send failed with.
        errno: i32,
    },
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Icmp(error) => error.fmt(f),
            ProbeError::Send { errno } => {
                write!(f, "sendmsg: {}", nix::errno::Errno::from_raw(*errno).desc())
            }
        }
    }
}

/// What happened to one probe (one echo request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub(crate) seq: u16,
    pub(crate) sent: Duration,
    pub(crate) reply: Option<Reply>,
    pub(crate) duplicates: Vec<Reply>,
    pub(crate) error: Option<ProbeError>,
}

impl Probe {
    /// The ICMP sequence number, starting at 1 as iputils' `icmp_seq` does (it wraps after
    /// 65535).
    pub fn seq(&self) -> u16 {
        self.seq
    }

    /// When the probe was sent, counted from the first probe.
    pub fn sent(&self) -> Duration {
        self.sent
    }

    /// The first reply within the timeout, if any.
    pub fn reply(&self) -> Option<&Reply> {
        self.reply.as_ref()
    }

    /// Further replies to the same probe (iputils' "DUP!").
    pub fn duplicates(&self) -> &[Reply] {
        &self.duplicates
    }

    /// The error that answered the probe instead of a reply, if any.
    pub fn error(&self) -> Option<&ProbeError> {
        self.error.as_ref()
    }

    /// The round-trip time of the first reply.
    pub fn rtt(&self) -> Option<Duration> {
        self.reply.as_ref().map(Reply::rtt)
    }

    /// The TTL (or hop limit) of the first reply.
    pub fn ttl(&self) -> Option<u8> {
        self.reply.as_ref().and_then(Reply::ttl)
    }

    /// Who answered: the sender of the first reply, else of the ICMP error.
    pub fn from(&self) -> Option<IpAddr> {
        match (&self.reply, &self.error) {
            (Some(reply), _) => Some(reply.from),
            (None, Some(ProbeError::Icmp(error))) => Some(error.from),
            _ => None,
        }
    }

    /// Whether a reply came back within the timeout.
    pub fn is_answered(&self) -> bool {
        self.reply.is_some()
    }

    /// The error as iputils prints it: `From 10.0.1.1 icmp_seq=1 Time to live exceeded`, or
    /// `ping: sendmsg: Network is unreachable`.
    pub(crate) fn error_line(&self) -> Option<String> {
        match self.error.as_ref()? {
            ProbeError::Icmp(error) => {
                struct Line<'a>(&'a IcmpError, u16);
                impl fmt::Display for Line<'_> {
                    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        let Line(error, seq) = self;
                        write!(f, "From {} icmp_seq={seq} ", error.from)?;
                        wire::describe(f, Family::of(error.from), error.kind, error.code, error.mtu)
                    }
                }
                Some(Line(error, self.seq).to_string())
            }
            error @ ProbeError::Send { .. } => Some(format!("ping: {error}")),
        }
    }
}

/// RTT figures over every reply, duplicates included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RttSummary {
    min: Duration,
    avg: Duration,
    max: Duration,
    mdev: Duration,
}

impl RttSummary {
    fn of(samples: impl Iterator<Item = Duration>) -> Option<RttSummary> {
        let nanos: Vec<u64> = samples.map(|d| d.as_nanos() as u64).collect();
        let count = nanos.len() as u64;
        let (&min, &max) = (nanos.iter().min()?, nanos.iter().max()?);
        let total: u64 = nanos.iter().sum();
        let mean = total as f64 / count as f64;
        // Two passes rather than iputils' sum of squares: the same population standard
        // deviation, without the cancellation that sum-of-squares suffers at nanosecond scale.
        let variance = nanos.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / count as f64;
        Some(RttSummary {
            min: Duration::from_nanos(min),
            max: Duration::from_nanos(max),
            avg: Duration::from_nanos(total / count),
            mdev: Duration::from_nanos(variance.sqrt() as u64),
        })
    }
}

/// The outcome of one ping run: iputils' counters and RTT figures, and a record per probe.
///
/// `Display` prints iputils' summary block; the alternate form (`{:#}`) prints the whole
/// transcript, one line per reply or error, as iputils does:
///
/// ```text
/// --- 1.1.1.1 ping statistics ---
/// 5 packets transmitted, 5 received, 0% packet loss, time 4005ms
/// rtt min/avg/max/mdev = 0.031/0.046/0.058/0.009 ms
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct PingStats {
    pub(crate) node: String,
    pub(crate) target: String,
    pub(crate) addr: IpAddr,
    pub(crate) size: usize,
    pub(crate) flood: bool,
    pub(crate) transmitted: u64,
    pub(crate) received: u64,
    pub(crate) duplicates: u64,
    pub(crate) corrupted: u64,
    pub(crate) errors: u64,
    pub(crate) time: Duration,
    /// iputils' moving average of the RTT, in its own fixed point: microseconds times 8.
    pub(crate) ewma_x8: u64,
    pub(crate) probes: Vec<Probe>,
    rtt: Option<RttSummary>,
}

/// The counters a session hands over with its probes.
pub(crate) struct Counters {
    pub(crate) transmitted: u64,
    pub(crate) received: u64,
    pub(crate) duplicates: u64,
    pub(crate) corrupted: u64,
    pub(crate) errors: u64,
    pub(crate) time: Duration,
    pub(crate) ewma_x8: u64,
}

impl PingStats {
    pub(crate) fn new(
        node: String,
        target: String,
        addr: IpAddr,
        size: usize,
        flood: bool,
        counters: Counters,
        probes: Vec<Probe>,
    ) -> PingStats {
        let Counters { transmitted, received, duplicates, corrupted, errors, time, ewma_x8 } = counters;
        let mut stats = PingStats {
            node,
            target,
            addr,
            size,
            flood,
            transmitted,
            received,
            duplicates,
            corrupted,
            errors,
            time,
            ewma_x8,
            probes,
            rtt: None,
        };
        stats.rtt = RttSummary::of(stats.rtts());
        stats
    }

    /// The node the probes were sent from.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The target as it was given (an address or a node name), as the summary names it.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The address that was pinged.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// Probes sent, including those the kernel refused to send (as iputils counts them).
    pub fn transmitted(&self) -> u64 {
        self.transmitted
    }

    /// Probes answered by at least one reply within the timeout; duplicates are not counted.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Replies beyond the first to the same probe.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Replies dropped because their ICMP checksum was wrong.
    pub fn corrupted(&self) -> u64 {
        self.corrupted
    }

    /// ICMP errors received for the probes (time exceeded, destination unreachable, ...).
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// The fraction of probes without a reply, `(transmitted - received) / transmitted`, from
    /// 0.0 to 1.0 (the summary prints it as a percentage); 0.0 when nothing was sent.
    pub fn loss(&self) -> f64 {
        if self.transmitted == 0 {
            return 0.0;
        }
        (self.transmitted - self.received) as f64 / self.transmitted as f64
    }

    /// Whether at least one probe was answered.
    pub fn is_reachable(&self) -> bool {
        self.received > 0
    }

    /// From the first probe sent to the last (iputils' "time").
    pub fn time(&self) -> Duration {
        self.time
    }

    /// The smallest RTT, or `None` without replies.
    pub fn rtt_min(&self) -> Option<Duration> {
        self.rtt.map(|rtt| rtt.min)
    }

    /// The mean RTT over all replies, duplicates included, or `None` without replies.
    pub fn rtt_avg(&self) -> Option<Duration> {
        self.rtt.map(|rtt| rtt.avg)
    }

    /// The largest RTT, or `None` without replies.
    pub fn rtt_max(&self) -> Option<Duration> {
        self.rtt.map(|rtt| rtt.max)
    }

    /// The population standard deviation of the RTTs (iputils' `mdev`), or `None` without
    /// replies.
    pub fn rtt_mdev(&self) -> Option<Duration> {
        self.rtt.map(|rtt| rtt.mdev)
    }

    /// The `percentile`-th percentile (0 to 100) of the RTTs, duplicates included, by the
    /// nearest-rank method: the smallest RTT that at least `percentile` % of the replies do
    /// not exceed. `None` without replies or when `percentile` is outside 0..=100.
    pub fn rtt_percentile(&self, percentile: f64) -> Option<Duration> {
        if !(0.0..=100.0).contains(&percentile) {
            return None;
        }
        let mut samples: Vec<Duration> = self.rtts().collect();
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let rank = (percentile / 100.0 * samples.len() as f64).ceil() as usize;
        Some(samples[rank.clamp(1, samples.len()) - 1])
    }

    /// Every RTT, duplicates included, in probe order.
    pub fn rtts(&self) -> impl Iterator<Item = Duration> + Clone + '_ {
        self.probes.iter().flat_map(|probe| probe.reply.iter().chain(&probe.duplicates).map(Reply::rtt))
    }

    /// One record per probe, in the order they were sent.
    pub fn probes(&self) -> &[Probe] {
        &self.probes
    }

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
struct ReplyTime(Duration);

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
struct FormatG(f64);

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

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const TARGET: IpAddr = IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1));

    fn reply(micros: u64) -> Reply {
        Reply { from: TARGET, ttl: Some(64), rtt: Duration::from_micros(micros), bytes: 64 }
    }

    fn probe(seq: u16, rtt: Option<u64>, duplicates: &[u64]) -> Probe {
        Probe {
            seq,
            sent: Duration::from_secs(u64::from(seq) - 1),
            reply: rtt.map(reply),
            duplicates: duplicates.iter().copied().map(reply).collect(),
            error: None,
        }
    }

    fn stats(probes: Vec<Probe>, errors: u64, time: Duration, flood: bool) -> PingStats {
        let received = probes.iter().filter(|p| p.reply.is_some()).count() as u64;
        let duplicates = probes.iter().map(|p| p.duplicates.len() as u64).sum();
        let counters = Counters {
            transmitted: probes.len() as u64,
            received,
            duplicates,
            corrupted: 0,
            errors,
            time,
            ewma_x8: 0,
        };
        PingStats::new("test0".into(), "1.1.1.1".into(), TARGET, 56, flood, counters, probes)
    }

    #[test]
    fn figures_follow_iputils() {
        // Four probes: 100, 200 and 400 µs, one lost, and a duplicate of the first at 300 µs.
        let stats = stats(
            vec![
                probe(1, Some(100), &[300]),
                probe(2, Some(200), &[]),
                probe(3, None, &[]),
                probe(4, Some(400), &[]),
            ],
            0,
            Duration::from_millis(3003),
            false,
        );
        assert_eq!((stats.transmitted(), stats.received(), stats.duplicates()), (4, 3, 1));
        // Duplicates do not count as received: 1 of 4 lost.
        assert_eq!(stats.loss(), 0.25);
        // RTT figures include the duplicate: mean of 100, 300, 200, 400 = 250; population
        // standard deviation sqrt((150² + 50² + 50² + 150²) / 4) = 111.803 µs.
        assert_eq!(stats.rtt_min(), Some(Duration::from_micros(100)));
        assert_eq!(stats.rtt_avg(), Some(Duration::from_micros(250)));
        assert_eq!(stats.rtt_max(), Some(Duration::from_micros(400)));
        assert_eq!(stats.rtt_mdev().map(|d| d.as_nanos()), Some(111_803));
        assert_eq!(
            stats.to_string(),
            "--- 1.1.1.1 ping statistics ---\n\
             4 packets transmitted, 3 received, +1 duplicates, 25% packet loss, time 3003ms\n\
             rtt min/avg/max/mdev = 0.100/0.250/0.400/0.111 ms"
        );
    }

    #[test]
    fn a_run_without_replies_has_no_rtt_line() {
        let stats = stats(
            vec![probe(1, None, &[]), probe(2, None, &[]), probe(3, None, &[])],
            3,
            Duration::from_millis(2030),
            false,
        );
        assert_eq!(stats.loss(), 1.0);
        assert!(!stats.is_reachable());
        assert_eq!(stats.rtt_avg(), None);
        assert_eq!(stats.rtt_percentile(50.0), None);
        assert_eq!(
            stats.to_string(),
            "--- 1.1.1.1 ping statistics ---\n\
             3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2030ms"
        );
    }

    #[test]
    fn loss_prints_like_printf_g() {
        // 2 of 3 lost: iputils prints 66.6667%.
        let stats = stats(
            vec![probe(1, Some(50), &[]), probe(2, None, &[]), probe(3, None, &[])],
            0,
            Duration::ZERO,
            false,
        );
        assert!(stats.to_string().contains(", 66.6667% packet loss, time 0ms"), "{stats}");
        assert_eq!(FormatG(0.0).to_string(), "0");
        assert_eq!(FormatG(100.0).to_string(), "100");
        assert_eq!(FormatG(33.333_332_061_767_58).to_string(), "33.3333");
        assert_eq!(FormatG(1.5).to_string(), "1.5");
        assert_eq!(FormatG(0.0001).to_string(), "0.0001");
        assert_eq!(FormatG(0.000_012_5).to_string(), "1.25e-05");
    }

    #[test]
    fn flood_runs_print_ipg_and_ewma() {
        let mut stats =
            stats(vec![probe(1, Some(10), &[]), probe(2, Some(12), &[])], 0, Duration::from_micros(9), true);
        // iputils: ewma starts at the first RTT times 8, then moves by (rtt - ewma/8).
        stats.ewma_x8 = 80 + 12 - 10;
        assert!(
            stats
                .to_string()
                .ends_with("rtt min/avg/max/mdev = 0.010/0.011/0.012/0.001 ms, ipg/ewma 0.009/0.010 ms"),
            "{stats}"
        );
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let probes = (1..=10).map(|i| probe(i, Some(u64::from(i) * 10), &[])).collect();
        let stats = stats(probes, 0, Duration::ZERO, false);
        let micros = |p: f64| stats.rtt_percentile(p).map(|d| d.as_micros());
        assert_eq!(micros(0.0), Some(10));
        assert_eq!(micros(50.0), Some(50));
        assert_eq!(micros(90.0), Some(90));
        assert_eq!(micros(95.0), Some(100));
        assert_eq!(micros(100.0), Some(100));
        assert_eq!(micros(101.0), None);
        assert_eq!(micros(f64::NAN), None);
    }

    #[test]
    fn reply_times_print_like_iputils() {
        let text = |micros| ReplyTime(Duration::from_micros(micros)).to_string();
        assert_eq!(text(45), "0.045 ms");
        assert_eq!(text(1234), "1.23 ms");
        assert_eq!(text(12_345), "12.3 ms");
        assert_eq!(text(123_456), "123 ms");
    }

    #[test]
    fn the_transcript_lists_replies_duplicates_and_errors() {
        let mut probes = vec![probe(1, Some(45), &[60]), probe(2, None, &[])];
        probes[1].error = Some(ProbeError::Icmp(IcmpError {
            from: IpAddr::V4(Ipv4Addr::new(1, 1, 1, 2)),
            kind: IcmpErrorKind::DestinationUnreachable,
            code: 1,
            mtu: None,
        }));
        let stats = stats(probes, 1, Duration::from_secs(1), false);
        let text = format!("{stats:#}");
        assert!(
            text.starts_with(
                "PING 1.1.1.1 (1.1.1.1) 56(84) bytes of data.\n\
                 64 bytes from 1.1.1.1: icmp_seq=1 ttl=64 time=0.045 ms\n\
                 64 bytes from 1.1.1.1: icmp_seq=1 ttl=64 time=0.060 ms (DUP!)\n\
                 From 1.1.1.2 icmp_seq=2 Destination Host Unreachable\n\
                 \n\
                 --- 1.1.1.1 ping statistics ---\n"
            ),
            "{text}"
        );
    }
}
