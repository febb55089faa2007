//! One pinger's state: when to send, which replies are its own, when it is done. No I/O here:
//! the engine feeds it the clock, the send results and the received messages.
//!
//! The schedule follows iputils' `ping`:
//! - the first probe goes out at once, the next `interval` after the previous one; with a zero
//!   interval, as soon as the latest probe is answered, or 10 ms after it when it is not
//!   (iputils' flood pacing, `MININTERVAL`). An earlier probe that is still waiting out its
//!   timeout does not hold the next one back: iputils counts as in flight only the probes sent
//!   after the latest one answered;
//! - with a count and no deadline, `count` probes are sent (`ping -c`); with a deadline, probes
//!   are sent until the deadline, or until `count` of them are answered or an ICMP error comes
//!   back (`ping -c N -w T`); the run also ends once `count` probes are answered (replies plus
//!   errors, as iputils counts them);
//! - a probe is lost when no reply comes back within `timeout`. iputils' `-W` only bounds the
//!   wait after the last probe, and stops waiting after twice the largest RTT seen; here every
//!   probe waits its full timeout, so a slow last reply on a loaded machine is not reported as
//!   lost.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::icmp::{self, EchoReply, EchoRequest, Family, QuotedError};
use super::stats::{Counters, IcmpError, PingStats, Probe, ProbeError, Reply};

/// iputils' `MININTERVAL`: with a zero interval, the pause before the next probe when the
/// previous one is still unanswered.
pub(crate) const FLOOD_RETRY: Duration = Duration::from_millis(10);
/// How soon to try again when the socket buffer is full (the probe was not sent).
const BUFFER_FULL_RETRY: Duration = Duration::from_millis(1);

/// A pinger's validated settings.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) count: Option<u64>,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) deadline: Option<Duration>,
    pub(crate) size: usize,
}

/// When a probe left, and whether it is still awaited. Kept apart from the [`Probe`] records,
/// which the statistics take over as they are.
struct Sent {
    at: Instant,
    /// `CLOCK_REALTIME` at send time, since the epoch: the kernel stamps replies with that clock.
    wall: Duration,
    /// Sent, neither answered nor timed out.
    pending: bool,
}

/// What to do about a send attempt that failed.
pub(crate) enum SendFailure {
    /// The socket buffer is full: the probe was not sent, try again shortly.
    Retry,
    /// The kernel refused the probe (no route, ...): it counts as sent and lost.
    Refused(i32),
}

pub(crate) struct Session {
    node: String,
    label: String,
    target: IpAddr,
    family: Family,
    ident: u16,
    settings: Settings,
    packet: Vec<u8>,

    start: Option<Instant>,
    deadline_at: Option<Instant>,
    next_send: Option<Instant>,
    /// Whether a zero interval may send before `next_send` (not after a failed send).
    eager: bool,
    /// Whether the latest probe sent has been answered (by a reply or an ICMP error): a zero
    /// interval then sends the next one at once.
    latest_answered: bool,
    /// Since when the kernel has kept refusing the current probe for lack of buffers.
    retrying_since: Option<Instant>,
    last_send: Option<Instant>,
    sending_done: bool,
    finished: bool,
    /// The realtime clock when the run ended: replies the kernel stamped later do not count,
    /// however soon they are read.
    ended: Option<Duration>,

    sent: Vec<Sent>,
    probes: Vec<Probe>,
    /// The first probe that may still be pending; all before it are answered or timed out.
    cursor: usize,
    in_flight: usize,
    received: u64,
    duplicates: u64,
    corrupted: u64,
    errors: u64,
    ewma_x8: u64,
}

impl Session {
    pub(crate) fn new(
        node: String,
        label: String,
        target: IpAddr,
        ident: u16,
        settings: Settings,
    ) -> Session {
        // iputils fills the payload with the byte sequence 0, 1, 2, ... Probes differ only in
        // their sequence number, so the message is built once and patched for each probe.
        let payload: Vec<u8> = (0..settings.size).map(|i| i as u8).collect();
        let request = EchoRequest { ident, seq: 0, payload: &payload };
        let mut packet = vec![0; request.buffer_len()];
        request.emit(Family::of(target), &mut packet);
        // Records are kept for every probe; a known count saves the regrowth (up to a bound,
        // for counts larger than any run will reach before its deadline).
        let capacity = settings.count.map_or(0, |count| count.min(1 << 16) as usize);
        Session {
            node,
            label,
            target,
            family: Family::of(target),
            ident,
            settings,
            packet,
            start: None,
            deadline_at: None,
            next_send: None,
            eager: true,
            latest_answered: false,
            retrying_since: None,
            last_send: None,
            sending_done: false,
            finished: false,
            ended: None,
            sent: Vec::with_capacity(capacity),
            probes: Vec::with_capacity(capacity),
            cursor: 0,
            in_flight: 0,
            received: 0,
            duplicates: 0,
            corrupted: 0,
            errors: 0,
            ewma_x8: 0,
        }
    }

    pub(crate) fn ident(&self) -> u16 {
        self.ident
    }

    pub(crate) fn target(&self) -> IpAddr {
        self.target
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// Whether a probe should be sent now.
    pub(crate) fn is_due(&self, now: Instant) -> bool {
        if self.finished || self.sending_done {
            return false;
        }
        match self.next_send {
            None => true,
            Some(at) => now >= at || (self.eager && self.settings.interval.is_zero() && self.latest_answered),
        }
    }

    /// Builds the next probe; send it, then report with [`sent`](Self::sent) or
    /// [`send_failed`](Self::send_failed).
    pub(crate) fn next_probe(&mut self) -> &[u8] {
        // iputils numbers probes from 1; the field wraps after 65535.
        let seq = (self.probes.len() as u64 + 1) as u16;
        icmp::set_seq(self.family, &mut self.packet, seq);
        &self.packet
    }

    /// Records that the probe from [`next_probe`](Self::next_probe) left at `now` (`wall` on
    /// the realtime clock).
    pub(crate) fn sent(&mut self, now: Instant, wall: Duration) {
        self.retrying_since = None;
        self.record_send(now, wall, None);
        self.in_flight += 1;
        self.eager = true;
        let gap = if self.settings.interval.is_zero() { FLOOD_RETRY } else { self.settings.interval };
        self.next_send = Some(now + gap);
    }

    /// Records that sending the probe failed.
    pub(crate) fn send_failed(&mut self, now: Instant, wall: Duration, failure: SendFailure) {
        self.eager = false;
        match failure {
            SendFailure::Retry => {
                self.start.get_or_insert(now);
                let since = *self.retrying_since.get_or_insert(now);
                if now.duration_since(since) < self.settings.timeout {
                    self.next_send = Some(now + BUFFER_FULL_RETRY);
                } else {
                    // Refused for as long as a reply may take: the probe is lost, and says
                    // why. (A full neighbour table, which is global to the host, looks so.)
                    self.retrying_since = None;
                    self.send_failed(now, wall, SendFailure::Refused(libc::ENOBUFS));
                }
            }
            SendFailure::Refused(errno) => {
                // iputils: "pretend we sent packet", and wait at least 10 ms before the next.
                self.record_send(now, wall, Some(ProbeError::Send { errno }));
                self.next_send = Some(now + self.settings.interval.max(FLOOD_RETRY));
            }
        }
    }

    fn record_send(&mut self, now: Instant, wall: Duration, error: Option<ProbeError>) {
        let start = *self.start.get_or_insert(now);
        if self.deadline_at.is_none() {
            self.deadline_at = self.settings.deadline.map(|deadline| start + deadline);
        }
        let seq = (self.probes.len() as u64 + 1) as u16;
        let pending = error.is_none();
        self.probes.push(Probe { seq, sent: now - start, reply: None, duplicates: Vec::new(), error });
        self.sent.push(Sent { at: now, wall, pending });
        self.latest_answered = false;
        self.last_send = Some(now);
        if self.settings.deadline.is_none() && Some(self.probes.len() as u64) == self.settings.count {
            self.sending_done = true;
        }
    }

    /// The probe a sequence number refers to: the latest one sent with it.
    fn index_of(&self, seq: u16) -> Option<usize> {
        let last = (self.probes.len() as u64).checked_sub(1)?;
        let wanted = u64::from(seq.wrapping_sub(1));
        let base = last & !0xffff;
        let index =
            if base + wanted <= last { base + wanted } else { (base + wanted).checked_sub(0x1_0000)? };
        Some(index as usize)
    }

    /// Takes an echo reply carrying this session's identifier.
    pub(crate) fn on_reply(&mut self, reply: &EchoReply<'_>, from: IpAddr, ttl: Option<u8>, wall: Duration) {
        let Some(index) = self.index_of(reply.seq) else {
            return;
        };
        if self.ended.is_some_and(|end| wall > end) {
            return;
        }
        if !reply.checksum_ok {
            self.corrupted += 1;
            return;
        }
        let (sent, probe) = (&mut self.sent[index], &mut self.probes[index]);
        // Clocks may step; iputils counts a negative RTT as zero too.
        let rtt = wall.saturating_sub(sent.wall);
        if rtt > self.settings.timeout {
            return;
        }
        let record = Reply { from, ttl: reply.ttl.or(ttl), rtt, bytes: reply.len };
        if probe.reply.is_none() {
            probe.reply = Some(record);
            self.received += 1;
            self.latest_answered |= index + 1 == self.probes.len();
            if sent.pending {
                sent.pending = false;
                self.in_flight -= 1;
            }
        } else {
            probe.duplicates.push(record);
            self.duplicates += 1;
        }
        // iputils' moving average, in its fixed point: microseconds times 8.
        let micros = rtt.as_micros() as u64;
        self.ewma_x8 = if self.ewma_x8 == 0 {
            micros * 8
        } else {
            (self.ewma_x8 + micros).saturating_sub(self.ewma_x8 / 8)
        };
    }

    /// Takes an ICMP error quoting a probe with this session's identifier, received at `wall`.
    pub(crate) fn on_error(&mut self, error: &QuotedError, from: IpAddr, wall: Duration) {
        if error.destination != self.target
            || error.family != self.family
            || self.ended.is_some_and(|end| wall > end)
        {
            return;
        }
        let Some(index) = self.index_of(error.seq) else {
            return;
        };
        self.errors += 1;
        self.latest_answered |= index + 1 == self.probes.len();
        self.probes[index].error.get_or_insert(ProbeError::Icmp(IcmpError {
            from,
            kind: error.kind,
            code: error.code,
            mtu: error.mtu,
        }));
        let sent = &mut self.sent[index];
        if sent.pending {
            sent.pending = false;
            self.in_flight -= 1;
        }
    }

    /// Times probes out and decides whether the run is over; `wall` is `now` on the realtime
    /// clock.
    pub(crate) fn update(&mut self, now: Instant, wall: Duration) {
        while let Some(sent) = self.sent.get_mut(self.cursor) {
            if sent.pending && now < sent.at + self.settings.timeout {
                break;
            }
            if sent.pending {
                sent.pending = false;
                self.in_flight -= 1;
            }
            self.cursor += 1;
        }
        if self.finished || self.start.is_none() {
            return;
        }
        let answered = self.received + self.errors;
        self.finished = self.settings.count.is_some_and(|count| answered >= count)
            || (self.settings.deadline.is_some() && self.errors > 0)
            || self.deadline_at.is_some_and(|deadline| now >= deadline)
            || (self.sending_done && self.in_flight == 0);
        if self.finished {
            self.ended = Some(wall);
        }
    }

    /// When the session next needs attention, if it is not finished: its next probe, the
    /// timeout of its oldest pending probe, or its deadline.
    pub(crate) fn wake_at(&self) -> Option<Instant> {
        if self.finished {
            return None;
        }
        let send = if self.sending_done { None } else { self.next_send };
        let expiry = self.sent.get(self.cursor).map(|sent| sent.at + self.settings.timeout);
        [send, expiry, self.deadline_at].into_iter().flatten().min()
    }

    pub(crate) fn into_stats(self) -> PingStats {
        let time = match (self.start, self.last_send) {
            (Some(start), Some(last)) => last - start,
            _ => Duration::ZERO,
        };
        let counters = Counters {
            transmitted: self.probes.len() as u64,
            received: self.received,
            duplicates: self.duplicates,
            corrupted: self.corrupted,
            errors: self.errors,
            time,
            ewma_x8: self.ewma_x8,
        };
        let flood = self.settings.interval.is_zero();
        PingStats::new(self.node, self.label, self.target, self.settings.size, flood, counters, self.probes)
    }
}

#[cfg(test)]
mod tests;
