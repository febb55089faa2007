//! The decision machine of one direction of a link: for each packet in, whether it is lost,
//! duplicated, corrupted (at which bit) and when it leaves.
//!
//! It is pure: time is passed in, nothing is read from the system, and all randomness comes
//! from ChaCha8 streams seeded from the link's seed. The same seed and the same packets (in the
//! same order, at the same times) give the same decisions; that is what makes a run replayable.
//!
//! Each impairment draws from its own stream, so changing one condition (say, the jitter)
//! does not change which packets another one (say, the loss) picks. Neighbour discovery that
//! the conditions spare (see [`Conditions::impair_neighbour_discovery`]) draws from a stream of
//! its own, so that it shifts no other packet's decisions.

use std::collections::VecDeque;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use crate::conditions::{Conditions, Direction, Distribution, Loss};

/// One random stream per impairment, so that they do not disturb each other, and one for
/// the jitter and reorder draws of spared neighbour discovery.
#[derive(Clone, Copy)]
enum Stream {
    Loss = 0,
    Duplicate = 1,
    Corrupt = 2,
    Reorder = 3,
    Jitter = 4,
    Neighbour = 5,
}

/// The impairment streams of one direction (loss to jitter), numbered `direction × 5 + stream`
/// among ChaCha's streams.
const IMPAIRMENT_STREAMS: usize = 5;
const STREAMS: usize = 6;

/// What happens to one copy of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Dropped by the loss model.
    Lost,
    /// Dropped because the rate limiter's queue is full.
    QueueFull,
    /// Sent on at `depart` (nanoseconds, same clock as the packet's arrival).
    Send {
        /// When the packet leaves the link.
        depart: u64,
        /// The bit to flip, counted from the first bit of the frame.
        corrupt_bit: Option<u32>,
        /// The packet skipped the delay (netem's reorder).
        reordered: bool,
    },
}

/// The decision for one packet: its own fate, and that of its duplicate if it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) original: Fate,
    pub(crate) duplicate: Option<Fate>,
    /// The packet is neighbour discovery that loss, duplication and corruption spared.
    pub(crate) spared: bool,
}

/// A packet offered to the link.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Offer {
    /// Arrival time in nanoseconds of a monotonic clock.
    pub(crate) now: u64,
    /// Bytes on the wire (all segments together for a GSO superframe).
    pub(crate) len: usize,
    /// Wire packets in it: 1, or the segment count of a GSO superframe (allowed only when
    /// [`Decider::per_packet`] is false).
    pub(crate) segments: u32,
    /// The packet is ARP or IPv6 neighbour discovery.
    pub(crate) neighbour: bool,
}

/// The decision machine of one direction.
pub(crate) struct Decider {
    conditions: Conditions,
    seed: u64,
    streams: [ChaCha8Rng; STREAMS],
    /// Gilbert–Elliott state: in the bad state.
    bad: bool,
    /// The last (correlated) uniform value behind the jitter.
    last_jitter: f64,
    /// The same for the jitter of spared neighbour discovery.
    last_neighbour_jitter: f64,
    /// When the rate limiter finishes sending what it holds.
    free_at: u64,
    /// Packets held by the rate limiter: (time it finishes sending them, packets, bytes).
    backlog: VecDeque<(u64, u32, u64)>,
    backlog_packets: u64,
    backlog_bytes: u64,
}

impl Decider {
    /// A decider for `direction` of a link with `seed` (overridden by the conditions' own
    /// seed when they have one).
    pub(crate) fn new(conditions: Conditions, seed: u64, direction: Direction) -> Self {
        let seed = conditions.seed.unwrap_or(seed);
        Decider {
            streams: streams(seed, direction),
            seed,
            conditions,
            bad: false,
            last_jitter: 0.5,
            last_neighbour_jitter: 0.5,
            free_at: 0,
            backlog: VecDeque::new(),
            backlog_packets: 0,
            backlog_bytes: 0,
        }
    }

    /// Changes the conditions from the next packet on. Packets already decided keep their
    /// fate; the random streams continue unless the new conditions bring another seed.
    pub(crate) fn set_conditions(&mut self, conditions: Conditions, direction: Direction) {
        if let Some(seed) = conditions.seed {
            if seed != self.seed {
                self.seed = seed;
                self.streams = streams(seed, direction);
            }
        }
        self.conditions = conditions;
    }

    #[cfg(test)]
    pub(crate) fn conditions(&self) -> &Conditions {
        &self.conditions
    }

    /// Whether the conditions act on single packets (loss, duplicate, corrupt, reorder,
    /// jitter). If not, a GSO superframe may be decided as a whole, since every one of its
    /// segments would get the same treatment.
    pub(crate) fn per_packet(&self) -> bool {
        let c = &self.conditions;
        !c.loss.is_none() || c.duplicate > 0.0 || c.corrupt > 0.0 || c.reorder > 0.0 || !c.jitter.is_zero()
    }

    /// Decides the fate of one packet.
    pub(crate) fn decide(&mut self, offer: Offer) -> Decision {
        let per_packet = offer.segments <= 1;
        if offer.neighbour && !self.conditions.impair_neighbour_discovery {
            // Neither lost, duplicated nor corrupted, and its other draws come from its own
            // stream: the decisions of the other packets stay what they would have been.
            let original = self.copy(offer, per_packet, true);
            return Decision { original, duplicate: None, spared: true };
        }
        if per_packet && self.lost() {
            return Decision { original: Fate::Lost, duplicate: None, spared: false };
        }
        let duplicated = per_packet && self.chance(Stream::Duplicate, self.conditions.duplicate);
        let original = self.copy(offer, per_packet, false);
        let duplicate = duplicated.then(|| self.copy(offer, per_packet, false));
        Decision { original, duplicate, spared: false }
    }

    /// The fate of one copy: corruption (unless `spared`), then the rate limiter, then the
    /// delay.
    fn copy(&mut self, offer: Offer, per_packet: bool, spared: bool) -> Fate {
        let corrupt_bit = (per_packet && !spared && self.chance(Stream::Corrupt, self.conditions.corrupt))
            .then(|| (self.next(Stream::Corrupt) % (offer.len as u64 * 8).max(1)) as u32);
        let Some(sent) = self.rate_limit(offer) else {
            return Fate::QueueFull;
        };
        let reorder_stream = if spared { Stream::Neighbour } else { Stream::Reorder };
        let reordered = per_packet
            && !self.conditions.delay.is_zero()
            && self.chance(reorder_stream, self.conditions.reorder);
        let depart =
            if reordered { sent } else { sent.saturating_add_signed(self.delay(per_packet, spared)) };
        Fate::Send { depart: depart.max(offer.now), corrupt_bit, reordered }
    }

    /// Passes a packet through the rate limiter: returns when its last bit is sent, or `None`
    /// when the queue is full.
    fn rate_limit(&mut self, offer: Offer) -> Option<u64> {
        let Some(rate) = self.conditions.rate else {
            return Some(offer.now);
        };
        while let Some(&(finish, packets, bytes)) = self.backlog.front() {
            if finish > offer.now {
                break;
            }
            self.backlog.pop_front();
            self.backlog_packets -= u64::from(packets);
            self.backlog_bytes -= bytes;
        }
        let packets = u64::from(offer.segments.max(1));
        let bytes = offer.len as u64;
        let over_packets = self.backlog_packets + packets > u64::from(self.conditions.limit_packets());
        let over_bytes = self.conditions.limit_bytes.is_some_and(|limit| self.backlog_bytes + bytes > limit);
        // The buffer sized in time: what is queued ahead would keep this packet waiting
        // longer than the buffer holds.
        let over_time = self
            .conditions
            .buffer
            .is_some_and(|buffer| self.free_at.saturating_sub(offer.now) > buffer.as_nanos() as u64);
        // An empty queue always takes a packet, or a superframe larger than the byte limit
        // could never pass.
        if !self.backlog.is_empty() && (over_packets || over_bytes || over_time) {
            return None;
        }
        let transmit = (u128::from(bytes) * 8 * 1_000_000_000 / u128::from(rate)) as u64;
        self.free_at = self.free_at.max(offer.now).saturating_add(transmit);
        self.backlog.push_back((self.free_at, packets as u32, bytes));
        self.backlog_packets += packets;
        self.backlog_bytes += bytes;
        Some(self.free_at)
    }

    /// The delay of one packet, jitter included, in nanoseconds (may be negative with a large
    /// jitter; the caller never lets a packet leave before it arrived).
    fn delay(&mut self, per_packet: bool, spared: bool) -> i64 {
        let delay = self.conditions.delay.as_nanos() as i64;
        let jitter = self.conditions.jitter.as_nanos() as f64;
        if jitter == 0.0 || !per_packet {
            return delay;
        }
        let rho = self.conditions.jitter_correlation;
        let fresh = self.uniform(if spared { Stream::Neighbour } else { Stream::Jitter });
        let last = if spared { &mut self.last_neighbour_jitter } else { &mut self.last_jitter };
        let u = (1.0 - rho) * fresh + rho * *last;
        *last = u;
        let offset = match self.conditions.distribution {
            Distribution::Uniform => (2.0 * u - 1.0) * jitter,
            Distribution::Normal => inverse_normal_cdf(u) * jitter,
        };
        delay + offset.round() as i64
    }

    fn lost(&mut self) -> bool {
        match self.conditions.loss {
            Loss::Random(p) => self.chance(Stream::Loss, p),
            Loss::GilbertElliott(ge) => {
                // As netem: the state moves, and the packet's loss is drawn with the
                // probability of the state it was in before the move.
                let (leave, loss) = if self.bad { (ge.r, ge.loss_bad) } else { (ge.p, ge.loss_good) };
                if self.chance(Stream::Loss, leave) {
                    self.bad = !self.bad;
                }
                self.chance(Stream::Loss, loss)
            }
        }
    }

    /// True with probability `p`. Draws nothing when `p` is 0, so an impairment that is off
    /// leaves its stream where it was.
    fn chance(&mut self, stream: Stream, p: f64) -> bool {
        p > 0.0 && self.uniform(stream) < p
    }

    fn uniform(&mut self, stream: Stream) -> f64 {
        // 53 random bits: every double in [0, 1) that is a multiple of 2^-53.
        (self.next(stream) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn next(&mut self, stream: Stream) -> u64 {
        self.streams[stream as usize].next_u64()
    }
}

fn streams(seed: u64, direction: Direction) -> [ChaCha8Rng; STREAMS] {
    std::array::from_fn(|index| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // The neighbour streams come after both directions' impairment streams, so that the
        // impairment streams keep the numbers they had before there was a neighbour stream:
        // a seed gives the same decisions it always gave.
        let number = if index < IMPAIRMENT_STREAMS {
            direction.index() * IMPAIRMENT_STREAMS + index
        } else {
            2 * IMPAIRMENT_STREAMS + direction.index()
        };
        rng.set_stream(number as u64);
        rng
    })
}

/// The inverse of the standard normal distribution function (Acklam's rational
/// approximation, relative error below 1.2e-9), clamped so that 0 and 1 give finite values.
pub(crate) fn inverse_normal_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] =
        [7.784_695_709_041_462e-3, 3.224_671_290_700_398e-1, 2.445_134_137_142_996, 3.754_408_661_907_416];
    const LOW: f64 = 0.02425;
    let p = p.clamp(1e-300, 1.0 - f64::EPSILON / 2.0);
    if p < LOW {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -inverse_normal_cdf(1.0 - p)
    }
}

#[cfg(test)]
mod tests;
