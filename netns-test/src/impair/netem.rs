//! The kernel path: a netem qdisc, where the kernel has `sch_netem`.
//!
//! rtnetlink has no netem type, so the options are encoded here: `TCA_OPTIONS` holds the
//! 24-byte `struct tc_netem_qopt` directly, followed by netem's own attributes (correlation,
//! reorder, corrupt, loss model, rate, delay distribution, 64-bit times, seed). Wrapping the
//! struct as an ordinary attribute would shift every field by the 4-byte attribute header (a
//! public snippet that does so gets `limit = 0`). The encoding is checked byte for byte
//! against what iproute2's `tc` sends (see the tests).
//!
//! netem and the engine differ in a few places, documented on [`NetemOptions::from_conditions`].

use std::fmt::Write as _;
use std::io;
use std::sync::OnceLock;

use rtnetlink::packet_core::{DefaultNla, NLM_F_CREATE, NLM_F_REPLACE};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::tc::{TcAttribute, TcHandle, TcMessage};

use crate::error::{Error, Result};
use crate::netlink::{acked, is_errno};
use crate::ns;

use super::decide::inverse_normal_cdf;
use crate::conditions::{Distribution, Loss, ValidConditions};

const TCA_OPTIONS: u16 = 2;
const TCA_NETEM_CORR: u16 = 1;
const TCA_NETEM_DELAY_DIST: u16 = 2;
const TCA_NETEM_REORDER: u16 = 3;
const TCA_NETEM_CORRUPT: u16 = 4;
const TCA_NETEM_LOSS: u16 = 5;
const TCA_NETEM_RATE: u16 = 6;
const TCA_NETEM_RATE64: u16 = 8;
const TCA_NETEM_LATENCY64: u16 = 10;
const TCA_NETEM_JITTER64: u16 = 11;
const TCA_NETEM_PRNG_SEED: u16 = 14;
const NETEM_LOSS_GE: u16 = 2;
const NLA_F_NESTED: u16 = 0x8000;

/// A packet-scheduler tick: netem's 32-bit times count 64 ns units (`PSCHED_SHIFT` = 6).
const TICK_NS: u64 = 64;

/// netem's distribution tables hold 4096 values scaled by 8192 (`NETEM_DIST_SCALE`).
const DIST_SIZE: usize = 4096;
const DIST_SCALE: f64 = 8192.0;

/// The options of one netem qdisc, in the kernel's terms: probabilities scaled to `u32`,
/// times in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct NetemOptions {
    pub(crate) latency_ns: u64,
    pub(crate) jitter_ns: u64,
    pub(crate) limit: u32,
    pub(crate) loss: u32,
    pub(crate) gap: u32,
    pub(crate) duplicate: u32,
    pub(crate) delay_correlation: u32,
    pub(crate) reorder: u32,
    pub(crate) corrupt: u32,
    /// Gilbert–Elliott: p, r, h, k1 as netem names them.
    pub(crate) gilbert_elliott: Option<[u32; 4]>,
    /// Bytes per second.
    pub(crate) rate: Option<u64>,
    /// The delay distribution table (none: uniform).
    pub(crate) distribution: Option<Vec<i16>>,
    pub(crate) seed: Option<u64>,
}

/// A probability as netem stores it: `rint(p × (2³² − 1))`, rounding ties to even like the C
/// library's `rint` that iproute2 uses, so that the bytes match `tc`'s.
pub(crate) fn probability(p: f64) -> u32 {
    (p.clamp(0.0, 1.0) * f64::from(u32::MAX)).round_ties_even() as u32
}

impl NetemOptions {
    /// The netem equivalent of `conditions`, with `seed` for netem's generator (used by
    /// kernels from 6.6 on; older ones ignore it, and their runs do not replay).
    ///
    /// Differences from the engine: netem's `limit` counts every packet it holds, in delay
    /// too, while the engine's counts the packets waiting for the rate limiter; netem sends
    /// reordered packets ahead of the rate limiter too; and netem, a qdisc that sees every
    /// frame alike, cannot spare ARP and neighbour discovery from loss, duplication and
    /// corruption (`impair_neighbour_discovery` has no netem option: it is as if it were set).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for what netem cannot do: a byte limit, a buffer sized in time.
    pub(crate) fn from_conditions(conditions: &ValidConditions, seed: u64) -> Result<Self> {
        if let Some(bytes) = conditions.limit_bytes {
            return Err(Error::Unsupported {
                feature: "limit_bytes on netem".into(),
                reason: format!(
                    "netem limits its queue in packets only (asked for {bytes} bytes); use `limit` \
                     or the user-space engine"
                ),
            });
        }
        if let Some(buffer) = conditions.buffer {
            return Err(Error::Unsupported {
                feature: "buffer on netem".into(),
                reason: format!(
                    "netem limits its queue in packets, counting those in delay too, and has no queue \
                     sized in time (asked for {}); use `limit` or the user-space engine",
                    humantime::format_duration(buffer)
                ),
            });
        }
        let (loss, gilbert_elliott) = match conditions.loss {
            Loss::Random(p) => (probability(p), None),
            Loss::GilbertElliott(ge) => {
                // netem's h is the probability of *not* losing in the bad state.
                let h = u32::MAX - probability(ge.loss_bad);
                (0, Some([probability(ge.p), probability(ge.r), h, probability(ge.loss_good)]))
            }
        };
        Ok(NetemOptions {
            latency_ns: conditions.delay.as_nanos() as u64,
            jitter_ns: conditions.jitter.as_nanos() as u64,
            limit: conditions.limit_packets(),
            loss,
            // netem reorders only with a gap; tc sets 1 (every packet may be reordered).
            gap: u32::from(conditions.reorder > 0.0),
            duplicate: probability(conditions.duplicate),
            delay_correlation: probability(conditions.jitter_correlation),
            reorder: probability(conditions.reorder),
            corrupt: probability(conditions.corrupt),
            gilbert_elliott,
            rate: conditions.rate.map(|bits| bits / 8),
            distribution: (conditions.distribution == Distribution::Normal && !conditions.jitter.is_zero())
                .then(normal_table),
            seed: Some(conditions.seed.unwrap_or(seed)),
        })
    }

    /// The `TCA_OPTIONS` payload: `struct tc_netem_qopt`, then the attributes, in the order
    /// `tc` writes them.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let ticks = |ns: u64| u32::try_from(ns / TICK_NS).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(64);
        for field in
            [ticks(self.latency_ns), self.limit, self.loss, self.gap, self.duplicate, ticks(self.jitter_ns)]
        {
            out.extend_from_slice(&field.to_ne_bytes());
        }
        if self.delay_correlation != 0 {
            attribute(&mut out, TCA_NETEM_CORR, &words(&[self.delay_correlation, 0, 0]));
        }
        if self.reorder != 0 {
            attribute(&mut out, TCA_NETEM_REORDER, &words(&[self.reorder, 0]));
        }
        if self.corrupt != 0 {
            attribute(&mut out, TCA_NETEM_CORRUPT, &words(&[self.corrupt, 0]));
        }
        if let Some(model) = self.gilbert_elliott {
            let mut nested = Vec::new();
            attribute(&mut nested, NETEM_LOSS_GE, &words(&model));
            attribute(&mut out, TCA_NETEM_LOSS | NLA_F_NESTED, &nested);
        }
        if let Some(rate) = self.rate {
            // Rates from 4 GB/s on need the 64-bit attribute; the 32-bit field then says "see
            // there" with all ones, as tc does.
            let low = match u32::try_from(rate) {
                Ok(rate) => rate,
                Err(_) => {
                    attribute(&mut out, TCA_NETEM_RATE64, &rate.to_ne_bytes());
                    u32::MAX
                }
            };
            // struct tc_netem_rate: rate, packet_overhead, cell_size, cell_overhead.
            attribute(&mut out, TCA_NETEM_RATE, &words(&[low, 0, 0, 0]));
        }
        if let Some(table) = &self.distribution {
            let bytes: Vec<u8> = table.iter().flat_map(|v| v.to_ne_bytes()).collect();
            attribute(&mut out, TCA_NETEM_DELAY_DIST, &bytes);
        }
        // Times beyond the 32-bit tick fields (about 274 s) go in nanoseconds.
        if ticks(self.latency_ns) == u32::MAX {
            attribute(&mut out, TCA_NETEM_LATENCY64, &(self.latency_ns as i64).to_ne_bytes());
        }
        if ticks(self.jitter_ns) == u32::MAX {
            attribute(&mut out, TCA_NETEM_JITTER64, &(self.jitter_ns as i64).to_ne_bytes());
        }
        if let Some(seed) = self.seed {
            attribute(&mut out, TCA_NETEM_PRNG_SEED, &seed.to_ne_bytes());
        }
        out
    }

    /// The attributes of an `RTM_NEWQDISC` message for this qdisc: its kind, and the options
    /// as raw bytes.
    pub(crate) fn tc_attributes(&self) -> Vec<TcAttribute> {
        vec![
            TcAttribute::Kind("netem".into()),
            TcAttribute::Other(DefaultNla::new(TCA_OPTIONS, self.encode())),
        ]
    }
}

fn words(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

/// Appends a netlink attribute: length, type, payload, padding to 4 bytes.
fn attribute(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = u16::try_from(4 + payload.len()).expect("netem attributes are small");
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// netem's normal distribution table, as iproute2's `normal.dist` (values of the inverse
/// normal distribution function at 4096 evenly spaced points, times 8192). It matches that
/// file to within 1 in every entry; it is computed rather than read from disk, where it is
/// often not installed.
pub(crate) fn normal_table() -> Vec<i16> {
    (0..DIST_SIZE)
        .map(|k| {
            // iproute2 tabulates 16384 points and keeps every 4th.
            let p = (4.0 * k as f64 + 0.5) / (4.0 * DIST_SIZE as f64);
            let value = (inverse_normal_cdf(p) * DIST_SCALE).round();
            value.clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
        })
        .collect()
}

/// Replaces the root qdisc of interface `ifindex` in the namespace of `handle` with netem
/// (`tc qdisc replace dev <ifname> root netem ...`).
///
/// # Errors
/// [`Error::Unsupported`] (feature `sch_netem`) when the kernel has no netem, saying what the
/// kernel answered and what would provide it; [`Error::Netlink`] for other refusals.
pub(crate) async fn apply(
    handle: &rtnetlink::Handle,
    node: &str,
    ifindex: u32,
    ifname: &str,
    options: &NetemOptions,
) -> Result<()> {
    send_qdisc(handle, ifindex, options).await.map_err(|error| {
        if is_errno(&error, libc::ENOENT) {
            let answer = io::Error::from_raw_os_error(libc::ENOENT);
            Error::Unsupported { feature: "sch_netem".into(), reason: missing_netem_reason(&answer) }
        } else {
            Error::netlink(node, format!("tc qdisc replace dev {ifname} root netem"), error)
        }
    })
}

/// Sends `RTM_NEWQDISC` (create or replace, at the root). rtnetlink's qdisc request builder
/// cannot carry options, so the message is made here.
async fn send_qdisc(
    handle: &rtnetlink::Handle,
    ifindex: u32,
    options: &NetemOptions,
) -> Result<(), rtnetlink::Error> {
    let mut message = TcMessage::with_index(ifindex as i32);
    message.header.parent = TcHandle::ROOT;
    message.attributes.extend(options.tc_attributes());
    acked(handle, RouteNetlinkMessage::NewQueueDiscipline(message), NLM_F_CREATE | NLM_F_REPLACE).await
}

/// Why the kernel has no netem, and what would provide it.
fn missing_netem_reason(answer: &io::Error) -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let release = release.trim();
    let mut reason = format!(
        "the kernel refused a netem qdisc with \"{answer}\" (ENOENT: no qdisc kind \"netem\"); Linux {release} "
    );
    let module_dir = std::path::Path::new("/lib/modules").join(release).join("kernel/net/sched");
    let shipped = std::fs::read_dir(&module_dir)
        .map(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("sch_netem.")))
        .unwrap_or(false);
    if shipped {
        let _ = write!(
            reason,
            "has the module in {} but it is not loaded: run `modprobe sch_netem`",
            module_dir.display()
        );
    } else {
        let _ = write!(
            reason,
            "has it neither built in nor as a module (no sch_netem in {}); install the kernel's extra \
             modules (linux-modules-extra-{release} on Ubuntu, kernel-modules-extra on Fedora/RHEL) and \
             run `modprobe sch_netem`, or use a kernel built with CONFIG_NET_SCH_NETEM. The user-space \
             engine works without it",
            module_dir.display()
        );
    }
    reason
}

/// Whether the kernel has netem: tried once per process, in a scratch network namespace of
/// its own (never the test's or the host's), by adding a netem qdisc to its loopback.
///
/// # Errors
/// [`Error::Unsupported`] (feature `sch_netem`) with the reason and the remedy, the same each
/// call.
pub(crate) fn netem_available() -> Result<()> {
    static PROBE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(probe)
        .clone()
        .map_err(|reason| Error::Unsupported { feature: "sch_netem".into(), reason })
}

fn probe() -> std::result::Result<(), String> {
    let probed = ns::in_scratch("netns-test-netem-probe", || async {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(|e| format!("could not open netlink to probe netem: {e}"))?;
        tokio::spawn(connection);
        let options = NetemOptions { limit: 1000, ..NetemOptions::default() };
        apply(&handle, "netem probe", 1, "lo", &options).await.map_err(|error| match error {
            Error::Unsupported { reason, .. } => reason,
            other => format!("{other:?}"),
        })
    });
    probed.unwrap_or_else(|error| Err(format!("could not probe netem: {error}")))
}

#[cfg(test)]
mod tests;
