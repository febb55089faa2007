//! The engine thread: it waits in `epoll` on every middle end's packet socket, its timer and
//! its wake-up eventfd, decides each frame's fate as it arrives, and sends frames when their
//! departure comes.

use std::collections::BinaryHeap;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use std::panic::{self, AssertUnwindSafe};

use super::super::decide::{Fate, Offer};
use super::super::gso::{self, VNET_LEN, VnetHdr};
use super::super::nat::{Direction as NatDirection, L4Checksum, Verdict as NatVerdict};
use super::super::neighbour::is_neighbour_discovery;
use super::super::packet::MAX_FRAME;
use super::{BATCH, Command, EngineLink, MAX_HELD, MAX_HELD_BYTES, Shared};
use crate::packets::{Frame, HookContext, Verdict};
use crate::timeline::EventKind;

/// Adds `n` to a counter. One writer (the engine thread): a relaxed load and store is enough
/// and cheaper than an atomic read-modify-write.
fn add(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

/// Where a frame goes and what it counts for.
#[derive(Clone, Copy)]
struct Route {
    id: usize,
    direction: usize,
    /// Wire packets in the frame (more than one for a superframe that crosses whole).
    segments: u32,
    /// Their bytes on the wire.
    wire_len: usize,
}

/// A frame waiting for its departure.
struct Scheduled {
    depart: u64,
    /// Arrival order, so that frames with one departure time leave in the order they came.
    seq: u64,
    route: Route,
    /// `virtio_net_hdr` then the frame.
    data: Vec<u8>,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.depart, self.seq) == (other.depart, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest departure first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.depart, other.seq).cmp(&(self.depart, self.seq))
    }
}

const WAKE: u64 = 0;
const TIMER: u64 = 1;
const FIRST_SOCKET: u64 = 2;

/// The engine thread's state.
pub(super) struct Runner {
    pub(super) shared: Arc<Shared>,
    epoll: OwnedFd,
    timer: OwnedFd,
    links: Vec<EngineLink>,
    heap: BinaryHeap<Scheduled>,
    seq: u64,
    armed: Option<u64>,
    scratch: Vec<u8>,
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, for capture timestamps.
    realtime_offset: i128,
    last_overrun_check: u64,
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
}

fn owned(rc: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: `check` passed, so `rc` is a fresh descriptor that nothing else owns.
    check(rc).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}

fn clock(id: libc::clockid_t) -> i128 {
    // SAFETY: timespec is plain data, filled by clock_gettime.
    let mut ts: libc::timespec = unsafe { mem::zeroed() };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(id, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// The monotonic clock in nanoseconds: the time base of decisions and of the timer.
pub(crate) fn monotonic_ns() -> u64 {
    clock(libc::CLOCK_MONOTONIC) as u64
}

impl Runner {
    pub(super) fn new() -> io::Result<Runner> {
        // SAFETY: plain syscalls creating descriptors; each result is checked.
        let epoll = owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: as above.
        let timer = owned(unsafe {
            libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC | libc::TFD_NONBLOCK)
        })?;
        // SAFETY: as above.
        let wake = owned(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        epoll_add(&epoll, wake.as_raw_fd(), WAKE)?;
        epoll_add(&epoll, timer.as_raw_fd(), TIMER)?;
        let realtime_offset = clock(libc::CLOCK_REALTIME) - clock(libc::CLOCK_MONOTONIC);
        Ok(Runner {
            shared: Arc::new(Shared { commands: Mutex::new(Vec::new()), wake, stop: AtomicBool::new(false) }),
            epoll,
            timer,
            links: Vec::new(),
            heap: BinaryHeap::new(),
            seq: 0,
            armed: None,
            scratch: vec![0; MAX_FRAME],
            realtime_offset,
            last_overrun_check: 0,
        })
    }

    pub(super) fn run(mut self) {
        // Timers fire within 1 ns of their time instead of the default 50 µs slack.
        // SAFETY: prctl with an integer argument; affects this thread only.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
        raise_priority();
        // SAFETY: epoll_event is plain data.
        let mut events: [libc::epoll_event; 64] = unsafe { mem::zeroed() };
        while !self.shared.stop.load(Ordering::Acquire) {
            // SAFETY: `events` is valid for 64 entries.
            let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), 64, -1) };
            if n < 0 {
                // EINTR: wait again.
                continue;
            }
            for event in &events[..n as usize] {
                match event.u64 {
                    WAKE => self.commands(),
                    TIMER => {
                        drain(self.timer.as_raw_fd());
                        self.armed = None;
                    }
                    token => {
                        let index = (token - FIRST_SOCKET) as usize;
                        self.read(index / 2, index % 2);
                    }
                }
            }
            self.send_due();
            self.arm();
            self.check_overruns();
            for link in &mut self.links {
                if let Some(capture) = &mut link.capture {
                    capture.flush();
                }
            }
        }
    }

    fn commands(&mut self) {
        drain(self.shared.wake.as_raw_fd());
        let commands = mem::take(&mut *self.shared.commands.lock().unwrap_or_else(PoisonError::into_inner));
        for command in commands {
            match command {
                Command::Attach(link, reply) => {
                    let index = self.links.len() as u64;
                    let registered = link.sockets.iter().enumerate().try_for_each(|(side, socket)| {
                        epoll_add(&self.epoll, socket.as_raw_fd(), FIRST_SOCKET + index * 2 + side as u64)
                    });
                    if registered.is_ok() {
                        self.links.push(*link);
                    }
                    let _ = reply.send(registered);
                }
                Command::SetConditions(id, direction, conditions, reply) => {
                    self.links[id.0].deciders[direction.index()].set_conditions(*conditions, direction);
                    let _ = reply.send(Ok(()));
                }
                Command::SetHook(id, direction, hook, reply) => {
                    let link = &mut self.links[id.0];
                    let side = direction.index();
                    link.hooks[side] = hook.map(|mut hook| {
                        hook.ctx = Some(HookContext::new(direction, link.seed, link.hook_ordinals[side]));
                        link.hook_ordinals[side] += 1;
                        hook
                    });
                    let _ = reply.send(Ok(()));
                }
                Command::Flush(reply) => {
                    for link in &mut self.links {
                        if let Some(capture) = &mut link.capture {
                            capture.flush();
                        }
                    }
                    let _ = reply.send(Ok(()));
                }
            }
        }
    }

    /// Reads up to a batch of frames that entered link `id` at `side` (0: a's end).
    fn read(&mut self, id: usize, side: usize) {
        for _ in 0..BATCH {
            let mut scratch = mem::take(&mut self.scratch);
            let received = self.links[id].sockets[side].recv(&mut scratch);
            match received {
                Ok(Some(len)) if len > scratch.len() => {
                    // Larger than any frame a veth can hand over: count it, do not pass half.
                    add(&self.links[id].shared.counters[side].send_errors, 1);
                }
                Ok(Some(len)) if len >= VNET_LEN + 14 => self.arrive(id, side, &mut scratch[..len]),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    self.scratch = scratch;
                    return;
                }
            }
            self.scratch = scratch;
        }
    }

    /// One frame arrived in direction `direction` of `id` (`buffer`: virtio header, frame).
    fn arrive(&mut self, id: usize, direction: usize, buffer: &mut [u8]) {
        let now = monotonic_ns();
        let header: &[u8; VNET_LEN] = buffer[..VNET_LEN].try_into().expect("the buffer holds a header");
        let hdr = VnetHdr::parse(header);
        let link = &self.links[id];
        // Frames are turned into real wire packets when single packets are acted on or
        // captured; otherwise they cross as they came, offloads and all.
        // A NAT rewrites single packets too.
        let materialize = link.deciders[direction].per_packet()
            || link.capture.is_some()
            || link.hooks[direction].is_some()
            || link.nat.is_some();
        if materialize && hdr.is_gso() {
            if let Some(segments) = gso::segment(&hdr, &buffer[VNET_LEN..]) {
                for mut segment in segments {
                    let wire_len = segment.len() - VNET_LEN;
                    self.translate(Route { id, direction, segments: 1, wire_len }, &mut segment, now);
                }
                return;
            }
        }
        if materialize && gso::complete_checksum(&hdr, &mut buffer[VNET_LEN..]) {
            buffer[..VNET_LEN].fill(0);
        }
        let (segments, wire_len) = gso::wire_size(&hdr, &buffer[VNET_LEN..]);
        // A superframe that could not be cut is decided as one packet when single packets are
        // acted on (the decider only treats single packets individually).
        let segments = if materialize { 1 } else { segments };
        self.translate(Route { id, direction, segments, wire_len }, buffer, now);
    }

    /// Runs the link's NAT, if it has one, on a frame (`buffer`: virtio header, frame), then
    /// offers it to its direction, or to the other one when the NAT turns it back (hairpinned
    /// or bounced frames go back out of the port they came in by).
    fn translate(&mut self, route: Route, buffer: &mut [u8], now: u64) {
        let Some(nat) = &self.links[route.id].nat else { return self.offer(route, buffer, now) };
        let hdr = VnetHdr::parse(buffer[..VNET_LEN].try_into().expect("the buffer holds a header"));
        let l4 = if hdr.needs_csum() { L4Checksum::Partial } else { L4Checksum::Complete };
        let nat_direction = if route.direction == nat.outbound.index() {
            NatDirection::Outbound
        } else {
            NatDirection::Inbound
        };
        let verdict = nat.translator.lock().unwrap_or_else(PoisonError::into_inner).process(
            &mut buffer[VNET_LEN..],
            nat_direction,
            l4,
            now,
        );
        match verdict {
            NatVerdict::Pass | NatVerdict::Translated => self.offer(route, buffer, now),
            NatVerdict::Hairpin | NatVerdict::Bounce => {
                self.offer(Route { direction: 1 - route.direction, ..route }, buffer, now);
            }
            NatVerdict::Drop(_) => {
                // Counted by the translator, by reason; the link counts it in.
                let counters = &self.links[route.id].shared.counters[route.direction];
                add(&counters.frames_in, u64::from(route.segments));
                add(&counters.bytes_in, route.wire_len as u64);
            }
        }
    }

    /// Counts one frame in, runs the direction's hook on it, then hands what the hook
    /// decided to the conditions.
    fn offer(&mut self, route: Route, buffer: &[u8], now: u64) {
        let Route { id, direction, segments, wire_len } = route;
        let link = &mut self.links[id];
        let counters = &link.shared.counters[direction];
        add(&counters.frames_in, u64::from(segments));
        add(&counters.bytes_in, wire_len as u64);
        let held = counters.held.load(Ordering::Relaxed);
        let held_bytes = counters.held_bytes.load(Ordering::Relaxed);
        if held + u64::from(segments) > MAX_HELD || held_bytes + buffer.len() as u64 > MAX_HELD_BYTES {
            add(&counters.queue_drops, u64::from(segments));
            return;
        }
        if link.hooks[direction].is_none() {
            return self.condition(route, buffer, now, 0);
        }
        match self.hook(id, direction, &buffer[VNET_LEN..]) {
            Verdict::Pass => self.condition(route, buffer, now, 0),
            Verdict::Delay(by) => {
                let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
                self.condition(route, buffer, now, by);
            }
            Verdict::Duplicate => {
                self.condition(route, buffer, now, 0);
                self.condition(route, buffer, now, 0);
            }
            Verdict::Replace(bytes) if bytes.len() >= 14 => {
                // The replacement has no offload to describe: an all-zero virtio header.
                let mut data = vec![0; VNET_LEN + bytes.len()];
                data[VNET_LEN..].copy_from_slice(&bytes);
                self.condition(Route { segments: 1, wire_len: bytes.len(), ..route }, &data, now, 0);
            }
            Verdict::Drop | Verdict::Replace(_) => {
                add(&self.links[id].shared.counters[direction].hook_drops, u64::from(segments));
            }
        }
    }

    /// Runs the hook of `direction` of link `id` on `frame`. A hook that panics is removed,
    /// its panic recorded for the failure report, and the frame passes.
    fn hook(&mut self, id: usize, direction: usize, frame: &[u8]) -> Verdict {
        let link = &mut self.links[id];
        let Some(installed) = link.hooks[direction].as_mut() else { return Verdict::Pass };
        let Some(ctx) = installed.ctx.as_mut() else { return Verdict::Pass };
        let view = Frame::new(frame);
        let decide = &mut installed.hook.decide;
        match panic::catch_unwind(AssertUnwindSafe(|| decide(&view, ctx))) {
            Ok(verdict) => {
                installed.state.count(&verdict, ctx.index());
                ctx.advance();
                verdict
            }
            Err(payload) => {
                let message = crate::error::panic_message(payload.as_ref());
                let detail = format!("{}, at frame {}: {message}", installed.state.description, ctx.index());
                installed.timeline.record(EventKind::HookPanicked, installed.state.subject.clone(), detail);
                installed.state.set_panic(message);
                link.hooks[direction] = None;
                Verdict::Pass
            }
        }
    }

    /// Decides the fate of one frame by the conditions and schedules its copies, `extra`
    /// nanoseconds later than the conditions say (a hook's delay).
    fn condition(&mut self, route: Route, buffer: &[u8], now: u64, extra: u64) {
        let Route { id, direction, segments, wire_len } = route;
        let link = &mut self.links[id];
        let neighbour = is_neighbour_discovery(&buffer[VNET_LEN..]);
        let decision = link.deciders[direction].decide(Offer { now, len: wire_len, segments, neighbour });
        let counters = &link.shared.counters[direction];
        if decision.spared {
            add(&counters.spared, 1);
        }
        if decision.duplicate.is_some() {
            add(&counters.duplicated, 1);
        }
        for fate in std::iter::once(decision.original).chain(decision.duplicate) {
            let counters = &self.links[id].shared.counters[direction];
            match fate {
                Fate::Lost => add(&counters.lost, u64::from(segments)),
                Fate::QueueFull => add(&counters.queue_drops, u64::from(segments)),
                Fate::Send { depart, corrupt_bit, reordered } => {
                    if reordered {
                        add(&counters.reordered, 1);
                    }
                    let mut copy = None;
                    if let Some(bit) = corrupt_bit {
                        add(&counters.corrupted, 1);
                        let mut data = buffer.to_vec();
                        let byte = VNET_LEN + (bit / 8) as usize;
                        if byte < data.len() {
                            data[byte] ^= 1 << (bit % 8);
                        }
                        copy = Some(data);
                    }
                    self.schedule(route, depart.saturating_add(extra), now, copy, buffer);
                }
            }
        }
    }

    /// Sends a copy at once when it is due and nothing is due before it; holds it otherwise.
    fn schedule(&mut self, route: Route, depart: u64, now: u64, copy: Option<Vec<u8>>, buffer: &[u8]) {
        if depart <= now && self.heap.peek().is_none_or(|first| first.depart > depart) {
            let data = copy.as_deref().unwrap_or(buffer);
            self.send(route, data);
            return;
        }
        let counters = &self.links[route.id].shared.counters[route.direction];
        add(&counters.held, u64::from(route.segments));
        add(&counters.held_bytes, buffer.len() as u64);
        self.seq += 1;
        let data = copy.unwrap_or_else(|| buffer.to_vec());
        self.heap.push(Scheduled { depart, seq: self.seq, route, data });
    }

    fn send_due(&mut self) {
        let now = monotonic_ns();
        while self.heap.peek().is_some_and(|first| first.depart <= now) {
            let Some(frame) = self.heap.pop() else { break };
            let counters = &self.links[frame.route.id].shared.counters[frame.route.direction];
            counters.held.fetch_sub(u64::from(frame.route.segments), Ordering::Relaxed);
            counters.held_bytes.fetch_sub(frame.data.len() as u64, Ordering::Relaxed);
            self.send(frame.route, &frame.data);
        }
    }

    fn send(&mut self, route: Route, data: &[u8]) {
        let Route { id, direction, segments, wire_len } = route;
        let link = &mut self.links[id];
        let counters = &link.shared.counters[direction];
        match link.sockets[1 - direction].send(data) {
            Ok(()) => {
                if segments > 1 {
                    add(&counters.superframes, 1);
                }
                add(&counters.frames_out, u64::from(segments));
                add(&counters.bytes_out, wire_len as u64);
                if let Some(capture) = &mut link.capture {
                    let realtime = i128::from(monotonic_ns()) + self.realtime_offset;
                    capture.write(Duration::from_nanos(realtime.max(0) as u64), &data[VNET_LEN..]);
                }
            }
            Err(_) => add(&counters.send_errors, u64::from(segments)),
        }
    }

    /// Arms the timer for the earliest departure, if it is not armed for it already.
    fn arm(&mut self) {
        let next = self.heap.peek().map(|first| first.depart);
        if next == self.armed || next.is_none() {
            return;
        }
        self.armed = next;
        let at = next.unwrap_or(0);
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: (at / 1_000_000_000) as libc::time_t,
                // A zero value would disarm the timer; a departure at 0 ns is in the past anyway.
                tv_nsec: ((at % 1_000_000_000).max(1)) as libc::c_long,
            },
        };
        // SAFETY: `spec` is a valid itimerspec; the old value is not asked for.
        unsafe {
            libc::timerfd_settime(
                self.timer.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
    }

    /// Every 100 ms of activity, adds the frames the kernel dropped at each socket.
    fn check_overruns(&mut self) {
        let now = monotonic_ns();
        if now - self.last_overrun_check < 100_000_000 {
            return;
        }
        self.last_overrun_check = now;
        for link in &self.links {
            for (side, socket) in link.sockets.iter().enumerate() {
                let drops = socket.drops();
                if drops > 0 {
                    add(&link.shared.counters[side].overruns, drops);
                }
            }
        }
    }
}

/// Lets the engine thread run as soon as it wakes, even on a machine whose CPUs are busy:
/// otherwise a departure can wait for a time slice (4 ms, one tick, measured under load).
/// `SCHED_FIFO` preempts ordinary threads at once; the engine never spins (it blocks in
/// `epoll_wait` whenever nothing is due), and the kernel's real-time throttling keeps 5 % of
/// each CPU for others even if it were kept busy. Without the privilege for it (rootless mode),
/// the highest nice value, or else the normal priority.
fn raise_priority() {
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: sets this thread's own scheduling policy from a valid sched_param.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
        // SAFETY: setpriority on this thread's own id.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, -20) };
    }
}

fn epoll_add(epoll: &OwnedFd, fd: RawFd, token: u64) -> io::Result<()> {
    let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: token };
    // SAFETY: `event` is a valid epoll_event for the duration of the call.
    check(unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) }).map(|_| ())
}

/// Reads the 8-byte counter of an eventfd or timerfd so that it stops being readable.
fn drain(fd: RawFd) {
    let mut value: u64 = 0;
    // SAFETY: reads 8 bytes into a u64.
    unsafe { libc::read(fd, (&raw mut value).cast(), 8) };
}
