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

use super::icmp::{self, Family, IcmpErrorKind};

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
        icmp::describe(f, Family::of(self.from), self.kind, self.code, self.mtu)
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
                        icmp::describe(f, Family::of(error.from), error.kind, error.code, error.mtu)
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
}

mod summary;

#[cfg(test)]
mod tests;
