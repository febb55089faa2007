//! What the user-space engine did to the frames of one direction of a link.

use std::fmt;

/// What one direction of a link has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirectionCounters {
    /// Wire packets that entered the link (a GSO superframe counts as its segments).
    pub frames_in: u64,
    /// Their bytes, Ethernet headers included.
    pub bytes_in: u64,
    /// Wire packets that left the link, duplicates included.
    pub frames_out: u64,
    /// Their bytes.
    pub bytes_out: u64,
    /// Packets dropped by the loss model.
    pub lost: u64,
    /// Packets dropped because the rate limiter's queue (or the engine's bound) was full.
    pub queue_drops: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Packets sent with a flipped bit.
    pub corrupted: u64,
    /// Packets sent early, skipping the delay.
    pub reordered: u64,
    /// ARP and IPv6 neighbour-discovery frames that loss, duplication and corruption spared
    /// (see [`Conditions::impair_neighbour_discovery`](super::Conditions::impair_neighbour_discovery)).
    pub spared: u64,
    /// Frames the kernel dropped before the engine could read them (socket buffer full).
    pub overruns: u64,
    /// Frames that could not be sent on (the receiving veth refused them, e.g. over its MTU).
    pub send_errors: u64,
    /// GSO superframes that crossed whole because nothing acted on single packets (their
    /// segments count in the frame and byte counters like any wire packet).
    pub superframes: u64,
    /// Frames a per-packet hook dropped ([`Verdict::Drop`](crate::packets::Verdict::Drop)).
    pub hook_drops: u64,
}

impl fmt::Display for DirectionCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "in {} frames/{} B, out {} frames/{} B, lost {}, queue drops {}, duplicated {}, corrupted {}, \
             reordered {}, spared {}, overruns {}, send errors {}, superframes {}",
            self.frames_in,
            self.bytes_in,
            self.frames_out,
            self.bytes_out,
            self.lost,
            self.queue_drops,
            self.duplicated,
            self.corrupted,
            self.reordered,
            self.spared,
            self.overruns,
            self.send_errors,
            self.superframes
        )?;
        // Only when a hook dropped something, so that a line without hooks reads as before.
        if self.hook_drops > 0 {
            write!(f, ", hook drops {}", self.hook_drops)?;
        }
        Ok(())
    }
}
