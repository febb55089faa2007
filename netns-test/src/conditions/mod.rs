//! Link conditions: delay, jitter, loss, rate, reorder, duplicate and corrupt, per direction
//! of a link, seeded so that a run can be replayed, and the counters of what they did.
//!
//! [`Conditions`] is the model: given in a topology
//! ([`Link::conditions`](crate::Link::conditions), or a topology file, whose schema is
//! documented on [`Conditions`]) and changed while the test runs
//! ([`LinkHandle::set_conditions`](crate::LinkHandle::set_conditions)). They are validated
//! once, with [`Conditions::validate`], before anything carries them: an invalid value is the
//! same [`ConditionError`] whichever backend (the user-space engine or netem) would have
//! applied it. [`DirectionCounters`] are what the user-space engine did to the frames of one
//! direction.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The longest delay or jitter accepted. Far beyond any useful test, it catches unit mistakes
/// (`delay = "10s"` meant as milliseconds still passes, `"10h"` does not) and keeps every
/// time computation far from overflow.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// The default number of packets that may wait for the rate limiter, as for netem.
pub const DEFAULT_LIMIT: u32 = 1000;

/// One direction of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From end `a` to end `b`.
    AToB,
    /// From end `b` to end `a`.
    BToA,
}

impl Direction {
    /// Both directions, in index order.
    pub const BOTH: [Direction; 2] = [Direction::AToB, Direction::BToA];

    /// 0 for a→b, 1 for b→a: the index into per-direction arrays.
    pub fn index(self) -> usize {
        match self {
            Direction::AToB => 0,
            Direction::BToA => 1,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::AToB => "a→b",
            Direction::BToA => "b→a",
        })
    }
}

/// The shape of the jitter added to the delay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Distribution {
    /// Uniform in `delay ± jitter` (netem's default).
    #[default]
    Uniform,
    /// Normal around `delay` with standard deviation `jitter` (netem's `distribution normal`).
    Normal,
}

/// How packets are lost.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Loss {
    /// Each packet is lost independently with this probability (0 to 1).
    Random(f64),
    /// Bursts of loss: the Gilbert–Elliott two-state model.
    GilbertElliott(GilbertElliott),
}

impl Default for Loss {
    fn default() -> Self {
        Loss::Random(0.0)
    }
}

impl Loss {
    /// Whether no packet can be lost.
    pub fn is_none(&self) -> bool {
        match self {
            Loss::Random(p) => *p == 0.0,
            Loss::GilbertElliott(ge) => ge.loss_good == 0.0 && (ge.p == 0.0 || ge.loss_bad == 0.0),
        }
    }
}

/// The Gilbert–Elliott loss model, with netem's parameters.
///
/// The link is in a good or a bad state. Before each packet it moves from good to bad with
/// probability `p` and from bad to good with probability `r`; the packet is then lost with
/// probability `loss_good` or `loss_bad` depending on the state. netem writes it
/// `loss gemodel p r 1-h 1-k`: `loss_bad` is netem's `1-h` and `loss_good` its `1-k`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GilbertElliott {
    /// Probability of moving from the good to the bad state.
    pub p: f64,
    /// Probability of moving from the bad to the good state.
    pub r: f64,
    /// Probability that a packet is lost in the bad state (netem's `1-h`; default 1).
    pub loss_bad: f64,
    /// Probability that a packet is lost in the good state (netem's `1-k`; default 0).
    pub loss_good: f64,
}

impl GilbertElliott {
    /// The simple Gilbert model: every packet in the bad state is lost, none in the good state.
    pub fn new(p: f64, r: f64) -> Self {
        GilbertElliott { p, r, loss_bad: 1.0, loss_good: 0.0 }
    }

    /// The long-run fraction of packets lost.
    pub fn mean_loss(&self) -> f64 {
        if self.p + self.r == 0.0 {
            return self.loss_good;
        }
        let bad = self.p / (self.p + self.r);
        bad * self.loss_bad + (1.0 - bad) * self.loss_good
    }
}

/// An invalid condition: which field, the value given, and what is allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid condition {field} = {value}: {reason}")]
pub struct ConditionError {
    /// The field, as named in topology files, e.g. `loss`.
    pub field: &'static str,
    /// The value given.
    pub value: String,
    /// What is allowed.
    pub reason: String,
}

impl ConditionError {
    fn new(field: &'static str, value: impl fmt::Display, reason: impl Into<String>) -> Self {
        ConditionError { field, value: value.to_string(), reason: reason.into() }
    }
}

/// The conditions of one direction of a link. The default is a perfect link.
///
/// Setters take and return `self`; [`validate`](Self::validate) checks the whole set (a
/// network validates conditions before they reach the link, whichever backend carries it, so
/// invalid values are reported, never applied). `Display` prints them in the words of
/// `tc qdisc ... netem`, e.g. `delay 10ms loss 1%`.
///
/// # Neighbour discovery is spared
/// Loss, duplication and corruption spare ARP and IPv6 neighbour discovery by default, so that
/// an impaired link does not also stall address resolution (a lost ARP request costs a second
/// before the kernel retries; a corrupted ARP reply can poison a neighbour entry). Delay,
/// jitter, reordering and the rate limit (its queue drops included) apply to every frame.
/// [`impair_neighbour_discovery(true)`](Self::impair_neighbour_discovery) impairs these frames
/// like any other. See that method for which frames count and what it means for replays.
///
/// Build them in Rust:
///
/// ```
/// use std::time::Duration;
/// use netns_test::conditions::{Conditions, Distribution};
///
/// let wan = Conditions::new()
///     .delay(Duration::from_millis(40))
///     .jitter(Duration::from_millis(5))
///     .distribution(Distribution::Normal)
///     .loss(0.01)
///     .rate(20_000_000)
///     .seed(7);
/// assert!(wan.validate().is_ok());
/// assert_eq!(wan.to_string(), "delay 40ms 5ms distribution normal loss 1% rate 20mbit seed 7");
/// ```
///
/// or read them from a topology file. Every key is optional; a missing key means "no such
/// impairment":
///
/// ```toml
/// delay = "10ms"           # a duration: "250us", "1.5ms", "2s", "1s 500ms"
/// jitter = "2ms"           # uniform in delay ± 2ms, or a table:
/// # jitter = { amount = "2ms", distribution = "normal", correlation = "25%" }
/// loss = "1%"              # independent random loss: "1%" or the fraction 0.01, or a table:
/// # loss = { model = "gilbert-elliott", p = "1%", r = "30%", loss_bad = "100%", loss_good = "0%" }
/// rate = "10mbit"          # bits per second: "800kbit", "10mbit", "1.5gbit", "10 Mbit/s", or 10000000
/// limit = 1000             # packets waiting for the rate limiter (default 1000)
/// limit_bytes = 1500000    # bytes waiting for the rate limiter (default: no byte limit)
/// buffer = "50ms"          # the rate limiter's queue sized in time (needs a rate)
/// reorder = "25%"          # packets sent at once, skipping the delay (needs a delay)
/// duplicate = "1%"         # packets sent twice
/// corrupt = "0.1%"         # packets with one bit flipped
/// impair_neighbour_discovery = true  # loss, duplicate and corrupt hit ARP and IPv6 ND too
///                                    # (default false: they are spared)
/// seed = 42                # the random seed; the test's seed is used when absent
/// ```
///
/// A named preset ([`PRESETS`]: `lan`, `wifi`, `mobile_3g`, ...) is written as a string,
/// `conditions = "mobile_3g"`, or as `preset` in a table whose other keys override its
/// values: `conditions = { preset = "mobile_3g", delay = "100ms" }`. An unknown preset is an
/// error that lists the known ones.
///
/// A probability written as a number is a fraction between 0 and 1 (`0.01` is 1 %); a number
/// above 1, such as `loss = 5`, is refused rather than guessed at.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "file::FileConditions", into = "file::RawConditions")]
pub struct Conditions {
    pub(crate) delay: Duration,
    pub(crate) jitter: Duration,
    pub(crate) distribution: Distribution,
    pub(crate) jitter_correlation: f64,
    pub(crate) loss: Loss,
    pub(crate) rate: Option<u64>,
    pub(crate) limit: Option<u32>,
    pub(crate) limit_bytes: Option<u64>,
    pub(crate) buffer: Option<Duration>,
    pub(crate) reorder: f64,
    pub(crate) duplicate: f64,
    pub(crate) corrupt: f64,
    pub(crate) impair_neighbour_discovery: bool,
    pub(crate) seed: Option<u64>,
}

impl Conditions {
    /// A perfect link: no delay, no loss, no rate limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a constant delay to every packet.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Varies the delay of each packet by up to `jitter` either way (uniform unless
    /// [`distribution`](Self::distribution) says otherwise). Jitter reorders packets whose
    /// delays cross, as with netem.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// The shape of the jitter.
    pub fn distribution(mut self, distribution: Distribution) -> Self {
        self.distribution = distribution;
        self
    }

    /// Correlates successive jitter values, from 0 (independent) to just below 1, as netem's
    /// `delay <d> <j> <correlation>`: each value is drawn from `(1 - c) · fresh + c · previous`.
    pub fn jitter_correlation(mut self, correlation: f64) -> Self {
        self.jitter_correlation = correlation;
        self
    }

    /// Loses each packet independently with probability `probability` (0 to 1).
    pub fn loss(mut self, probability: f64) -> Self {
        self.loss = Loss::Random(probability);
        self
    }

    /// Loses packets by a model, e.g. [`Loss::GilbertElliott`].
    pub fn loss_model(mut self, loss: Loss) -> Self {
        self.loss = loss;
        self
    }

    /// Limits the rate to `bits_per_second`, counting whole Ethernet frames. Packets wait in a
    /// queue of at most [`limit`](Self::limit) packets (and [`limit_bytes`](Self::limit_bytes)
    /// bytes); packets arriving at a full queue are dropped.
    pub fn rate(mut self, bits_per_second: u64) -> Self {
        self.rate = Some(bits_per_second);
        self
    }

    /// The most packets waiting for the rate limiter (default [`DEFAULT_LIMIT`]).
    pub fn limit(mut self, packets: u32) -> Self {
        self.limit = Some(packets);
        self
    }

    /// The most bytes waiting for the rate limiter (default: no byte limit).
    pub fn limit_bytes(mut self, bytes: u64) -> Self {
        self.limit_bytes = Some(bytes);
        self
    }

    /// Sizes the rate limiter's queue in time, the bufferbloat knob: a packet is dropped when
    /// the packets queued ahead of it would take longer than `buffer` to send at the
    /// [`rate`](Self::rate) (an empty queue always takes a packet). It applies next to
    /// [`limit`](Self::limit) and [`limit_bytes`](Self::limit_bytes): a packet is dropped as
    /// soon as any of the three is reached, so `buffer(50ms)` with the default limit of
    /// [`DEFAULT_LIMIT`] packets is a queue of at most 50 ms or 1000 packets, whichever is
    /// less. Needs a rate. netem has no queue sized in time: a link with a buffer is carried
    /// by the user-space engine, and asking netem for it is an
    /// [`Error::Unsupported`](crate::Error::Unsupported).
    pub fn buffer(mut self, buffer: Duration) -> Self {
        self.buffer = Some(buffer);
        self
    }

    /// Sends this fraction of packets at once, skipping the delay, so that they overtake the
    /// packets before them (netem's `reorder`). Needs a delay.
    pub fn reorder(mut self, probability: f64) -> Self {
        self.reorder = probability;
        self
    }

    /// Sends this fraction of packets twice.
    pub fn duplicate(mut self, probability: f64) -> Self {
        self.duplicate = probability;
        self
    }

    /// Flips one random bit in this fraction of packets.
    pub fn corrupt(mut self, probability: f64) -> Self {
        self.corrupt = probability;
        self
    }

    /// Whether loss, duplication and corruption also hit ARP and IPv6 neighbour discovery
    /// (default: no, they are spared). Delay, jitter, reordering and the rate limit apply to
    /// these frames either way.
    ///
    /// The frames spared are those the user-space engine recognises as neighbour discovery:
    /// Ethernet frames of EtherType 0x0806 (ARP), and IPv6 frames (EtherType 0x86DD) whose
    /// ICMPv6 message is of type 133 to 137 (router solicitation and advertisement, neighbour
    /// solicitation and advertisement, redirect), the ICMPv6 header following the IPv6
    /// header directly or after hop-by-hop, routing or destination options headers. Frames
    /// with a VLAN tag in them, fragments and other protocols are impaired like any frame.
    ///
    /// Replays: a spared frame draws nothing from the random streams of loss, duplication and
    /// corruption (the Gilbert–Elliott state does not move either), and its jitter and reorder
    /// draws come from a stream of its own. So which of the other frames are lost, duplicated,
    /// corrupted or reordered, and their jitter, are the same whether, when and how often
    /// neighbour discovery crossed: a seed replays them without `static_arp`. (A rate limit
    /// queues spared frames with the others, so with a rate their departure times and queue
    /// drops still depend on all the traffic.) With this set to `true`, these frames draw like
    /// any other frame, and a replay is exact only when the same neighbour traffic crosses.
    ///
    /// netem cannot tell these frames apart: on a link carried by netem, loss, duplication and
    /// corruption hit them too. That is why `NETNS_TEST_LINK_ENGINE=auto` chooses the engine
    /// when a link's conditions at the start would spare them; netem carries them only when
    /// asked for (`NETNS_TEST_LINK_ENGINE=netem`), or when the loss is added at runtime to a
    /// network that netem already carries (a line in the test's output says so then).
    pub fn impair_neighbour_discovery(mut self, impair: bool) -> Self {
        self.impair_neighbour_discovery = impair;
        self
    }

    /// Fixes the random seed of this direction. Without one, the engine uses the seed of the
    /// link it is given.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Whether these conditions change nothing.
    pub fn is_perfect(&self) -> bool {
        *self
            == Conditions {
                seed: self.seed,
                impair_neighbour_discovery: self.impair_neighbour_discovery,
                ..Conditions::default()
            }
    }
}

impl Conditions {
    /// The packet limit of the rate limiter's queue.
    pub(crate) fn limit_packets(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_LIMIT)
    }

    /// Whether these conditions lose, duplicate or corrupt frames but spare neighbour
    /// discovery, which only the user-space engine can do.
    pub(crate) fn spares_neighbour_discovery(&self) -> bool {
        !self.impair_neighbour_discovery
            && (!self.loss.is_none() || self.duplicate > 0.0 || self.corrupt > 0.0)
    }
}

impl fmt::Display for Conditions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words: Vec<String> = Vec::new();
        if !self.delay.is_zero() || !self.jitter.is_zero() {
            words.push(format!("delay {}", humantime::format_duration(self.delay)));
            if !self.jitter.is_zero() {
                words.push(humantime::format_duration(self.jitter).to_string());
                if self.jitter_correlation > 0.0 {
                    words.push(percent(self.jitter_correlation));
                }
                if self.distribution == Distribution::Normal {
                    words.push("distribution normal".into());
                }
            }
        }
        match self.loss {
            Loss::Random(p) if p > 0.0 => words.push(format!("loss {}", percent(p))),
            Loss::Random(_) => {}
            Loss::GilbertElliott(ge) => words.push(format!(
                "loss gemodel {} {} {} {}",
                percent(ge.p),
                percent(ge.r),
                percent(ge.loss_bad),
                percent(ge.loss_good)
            )),
        }
        if let Some(rate) = self.rate {
            words.push(format!("rate {}", file::format_rate(rate)));
        }
        if let Some(limit) = self.limit {
            words.push(format!("limit {limit}"));
        }
        if let Some(bytes) = self.limit_bytes {
            words.push(format!("limit_bytes {bytes}"));
        }
        if let Some(buffer) = self.buffer {
            words.push(format!("buffer {}", humantime::format_duration(buffer)));
        }
        for (name, value) in
            [("reorder", self.reorder), ("duplicate", self.duplicate), ("corrupt", self.corrupt)]
        {
            if value > 0.0 {
                words.push(format!("{name} {}", percent(value)));
            }
        }
        if self.impair_neighbour_discovery {
            words.push("impair_neighbour_discovery".into());
        }
        if let Some(seed) = self.seed {
            words.push(format!("seed {seed}"));
        }
        if words.is_empty() {
            return f.write_str("perfect");
        }
        f.write_str(&words.join(" "))
    }
}

/// `0.015` as `1.5%`, for messages and serialisation.
pub(crate) fn percent(fraction: f64) -> String {
    format!("{}%", (fraction * 100.0 * 1e9).round() / 1e9)
}

mod counters;
mod file;
mod presets;
mod validate;

#[cfg(test)]
mod tests;

pub use counters::DirectionCounters;
pub use presets::PRESETS;
pub(crate) use validate::{ValidConditions, validate_outages};
