//! The socket loop: sessions (one per pinger) over raw sockets (one per node, family and socket
//! settings), driven either by `ppoll(2)` on the calling thread or by the caller's tokio
//! runtime.
//!
//! The hot path of a flood ping is one `sendto` and one `recvmsg` per probe, like iputils':
//! over a veth pair the kernel runs the whole round trip inside `sendto` (the peer's softirq
//! answers before the call returns), so the reply is usually queued by the time it is read.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::time::TimeSpec;
use socket2::SockAddr;

use super::icmp::{self, ECHO_HEADER_LEN, Family, Message};
use super::ident::Ident;
use super::session::{SendFailure, Session, Settings};
use super::socket::{Datagram, IcmpSocket, SocketKey, Source, control_buffer};
use super::stats::PingStats;
use crate::error::{Error, Result};
use crate::network::Node;

/// How many probes the async driver sends before yielding to other tasks of its runtime.
const ASYNC_BUDGET: usize = 64;
/// How many probes may go out on a shared socket before its replies are read: enough to keep
/// the loop cheap, few enough that a burst of replies never overflows the receive buffer.
const SHARED_DRAIN_EVERY: usize = 32;
/// Room for the largest IPv4 header ahead of a reply.
const RECEIVE_SLACK: usize = 60;
/// Room for any ICMP error: one is at most 576 bytes long over IPv4 and 1280 over IPv6.
const MIN_RECEIVE_BUFFER: usize = 2048;

/// One pinger, resolved and validated.
pub(crate) struct Request {
    pub(crate) node: Node,
    pub(crate) label: String,
    pub(crate) target: IpAddr,
    pub(crate) settings: Settings,
    pub(crate) ttl: Option<u8>,
    pub(crate) source: Option<Source>,
    pub(crate) dont_fragment: bool,
}

struct Slot {
    socket: IcmpSocket,
    node: String,
    /// The sessions on this socket, by echo identifier.
    sessions: HashMap<u16, usize>,
    /// The only session, when the socket has one: reading may then stop after any reply that
    /// lets it send its next probe.
    only: Option<usize>,
    sent_since_drain: usize,
}

/// What the loop waits for after a [`pump`](Engine::pump).
pub(crate) enum Step {
    /// Every session has finished.
    Done,
    /// Wait until a socket is readable or the instant has come.
    Wait(Option<Instant>),
}

pub(crate) struct Engine {
    slots: Vec<Slot>,
    sessions: Vec<Session>,
    /// Per session: its socket and the target's socket address.
    routes: Vec<(usize, SockAddr)>,
    buffer: Vec<u8>,
    control: Vec<u8>,
    /// At most this many sessions run at once; the others wait for a place (see
    /// [`Engine::window`]).
    window: usize,
    /// Per session: whether it has been given a place in the window.
    started: Vec<bool>,
    // Released when the engine is dropped, after the last reply has been read.
    _idents: Vec<Ident>,
}

fn wall_clock() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

impl Engine {
    /// Opens the sockets the requests need, each inside its node.
    pub(crate) fn open(requests: Vec<Request>) -> Result<Engine> {
        let mut keys: Vec<(SocketKey, Node)> = Vec::new();
        let mut sessions = Vec::with_capacity(requests.len());
        let mut idents = Vec::with_capacity(requests.len());
        let mut slot_of = Vec::with_capacity(requests.len());
        let mut largest = 0;
        for request in requests {
            let key = SocketKey {
                node: request.node.name().to_string(),
                family: Family::of(request.target),
                ttl: request.ttl,
                source: request.source.clone(),
                dont_fragment: request.dont_fragment,
            };
            let slot = match keys.iter().position(|(k, _)| *k == key) {
                Some(slot) => slot,
                None => {
                    keys.push((key, request.node.clone()));
                    keys.len() - 1
                }
            };
            let ident = Ident::take().ok_or_else(|| Error::Ping {
                node: request.node.name().to_string(),
                target: request.label.clone(),
                reason: "all 65536 echo identifiers are taken by pingers running at the same time".into(),
            })?;
            largest = largest.max(request.settings.size);
            sessions.push(Session::new(
                request.node.name().to_string(),
                request.label,
                request.target,
                ident.get(),
                request.settings,
            ));
            idents.push(ident);
            slot_of.push(slot);
        }
        let mut slots = Vec::with_capacity(keys.len());
        for (index, (key, node)) in keys.iter().enumerate() {
            let members: Vec<usize> = (0..sessions.len()).filter(|&s| slot_of[s] == index).collect();
            let only = (members.len() == 1).then(|| members[0]);
            let socket = IcmpSocket::open(node, key, only.map(|s| sessions[s].ident()))?;
            slots.push(Slot {
                socket,
                node: key.node.clone(),
                sessions: members.iter().map(|&s| (sessions[s].ident(), s)).collect(),
                only,
                sent_since_drain: 0,
            });
        }
        let routes = sessions
            .iter()
            .zip(&slot_of)
            .map(|(session, &slot)| (slot, SockAddr::from(SocketAddr::new(session.target(), 0))))
            .collect();
        let started = vec![false; sessions.len()];
        Ok(Engine {
            slots,
            sessions,
            routes,
            buffer: vec![0; (largest + ECHO_HEADER_LEN + RECEIVE_SLACK).max(MIN_RECEIVE_BUFFER)],
            control: control_buffer(),
            window: usize::MAX,
            started,
            _idents: idents,
        })
    }

    /// Lets at most `window` sessions run at once; a session starts (sends its first probe,
    /// and starts its deadline) when one ends. All-pairs pings need it: thousands of sessions
    /// starting together in a switched network first broadcast thousands of ARP requests, each
    /// flooded to every port, and the kernel's backlogs drop most of them.
    pub(crate) fn window(mut self, window: usize) -> Self {
        self.window = window.max(1);
        self
    }

    /// Reads what has arrived, times probes out, sends what is due, and repeats while probes go
    /// out, at most `budget` of them. Returns what to wait for next.
    pub(crate) fn pump(&mut self, budget: usize) -> Result<Step> {
        let mut sent = 0;
        let (mut now, mut wall) = (Instant::now(), wall_clock());
        loop {
            for slot in 0..self.slots.len() {
                self.drain(slot, Some(now))?;
            }
            for session in &mut self.sessions {
                session.update(now, wall);
            }
            if self.sessions.iter().all(Session::is_finished) {
                // Replies the kernel stamped before the end still count: read them all.
                for slot in 0..self.slots.len() {
                    self.drain(slot, None)?;
                }
                return Ok(Step::Done);
            }
            let mut running = self
                .sessions
                .iter()
                .zip(&self.started)
                .filter(|(s, started)| **started && !s.is_finished())
                .count();
            let mut any = false;
            for index in 0..self.sessions.len() {
                if !self.started[index] {
                    if running >= self.window {
                        continue;
                    }
                    self.started[index] = true;
                    running += 1;
                }
                if self.sessions[index].is_due(now) {
                    // The next pass goes on with the clock read for this send: it is at most a
                    // round trip old, far below any timeout, and reading the clocks costs as
                    // much as a tenth of a flood probe.
                    (now, wall) = self.send(index)?;
                    any = true;
                    sent += 1;
                }
            }
            if !any {
                return Ok(Step::Wait(self.sessions.iter().filter_map(Session::wake_at).min()));
            }
            if sent >= budget {
                return Ok(Step::Wait(Some(now)));
            }
        }
    }

    /// Sends session `index`'s next probe; returns the clock readings taken just before.
    fn send(&mut self, index: usize) -> Result<(Instant, Duration)> {
        let (slot, to) = &self.routes[index];
        let slot = &mut self.slots[*slot];
        let session = &mut self.sessions[index];
        let packet = session.next_probe();
        let (now, wall) = (Instant::now(), wall_clock());
        match slot.socket.send_to(packet, to) {
            Ok(()) => session.sent(now, wall),
            Err(error)
                if error.kind() == io::ErrorKind::WouldBlock
                    || error.raw_os_error() == Some(libc::ENOBUFS) =>
            {
                session.send_failed(now, wall, SendFailure::Retry)
            }
            Err(error) => session.send_failed(
                now,
                wall,
                SendFailure::Refused(error.raw_os_error().unwrap_or(libc::EIO)),
            ),
        }
        slot.sent_since_drain += 1;
        if slot.only.is_none() && slot.sent_since_drain >= SHARED_DRAIN_EVERY {
            let slot = self.routes[index].0;
            self.drain(slot, None)?;
        }
        Ok((now, wall))
    }

    /// Reads the socket until nothing is queued. With `now`, a socket with a single session
    /// stops as soon as that session may send again: its next probe goes out first, and what
    /// remains is read right after.
    fn drain(&mut self, index: usize, now: Option<Instant>) -> Result<()> {
        let slot = &mut self.slots[index];
        slot.sent_since_drain = 0;
        loop {
            let datagram = slot.socket.recv(&mut self.buffer, &mut self.control).map_err(|e| {
                Error::io(format!("receiving on a raw ICMP socket in node `{}`", slot.node), e)
            })?;
            let Some(Datagram { len, from, time, hop_limit }) = datagram else {
                return Ok(());
            };
            let wall = time.unwrap_or_else(wall_clock);
            let bytes = &self.buffer[..len.min(self.buffer.len())];
            let message = match slot.socket.family() {
                Family::V4 => icmp::parse_ipv4(bytes),
                Family::V6 => icmp::parse_icmpv6(bytes),
            };
            let owner = |ident: u16| match slot.only {
                Some(only) => (self.sessions[only].ident() == ident).then_some(only),
                None => slot.sessions.get(&ident).copied(),
            };
            match message {
                Some(Message::Reply(reply)) => {
                    if let Some(session) = owner(reply.ident) {
                        self.sessions[session].on_reply(&reply, from, hop_limit, wall);
                    }
                }
                Some(Message::Error(error)) => {
                    if let Some(session) = owner(error.ident) {
                        self.sessions[session].on_error(&error, from, wall);
                    }
                }
                None => {}
            }
            if let (Some(now), Some(only)) = (now, slot.only) {
                if self.sessions[only].is_due(now) {
                    return Ok(());
                }
            }
        }
    }

    /// Runs every session to its end on the calling thread.
    pub(crate) fn run(mut self) -> Result<Vec<PingStats>> {
        loop {
            match self.pump(usize::MAX)? {
                Step::Done => return Ok(self.finish()),
                Step::Wait(until) => self.wait(until)?,
            }
        }
    }

    fn wait(&self, until: Option<Instant>) -> Result<()> {
        let mut fds: Vec<PollFd<'_>> =
            self.slots.iter().map(|slot| PollFd::new(slot.socket.as_fd(), PollFlags::POLLIN)).collect();
        let timeout = until.map(|at| TimeSpec::from_duration(at.saturating_duration_since(Instant::now())));
        match ppoll(&mut fds, timeout, None) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(errno) => Err(Error::io("waiting for ICMP replies (ppoll)", errno.into())),
        }
    }

    /// Runs every session to its end on the current tokio runtime.
    pub(crate) async fn run_async(mut self) -> Result<Vec<PingStats>> {
        use futures_util::future::select_all;
        use tokio::io::unix::AsyncFd;

        let registered = self
            .slots
            .iter()
            .map(|slot| {
                let what = || format!("registering a raw ICMP socket of node `{}` with tokio", slot.node);
                // A duplicate descriptor, owned by the registration: it refers to the same socket,
                // so readiness is the socket's, and it lives exactly as long as the registration.
                let fd = slot.socket.as_fd().try_clone_to_owned().map_err(|e| Error::io(what(), e))?;
                // SAFETY: the `OwnedFd` is valid and owned by the `AsyncFd`, which never replaces
                // it, so it stays open and the same for the registration's whole life.
                unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
                    .map_err(|e| Error::io(what(), e.into_parts().1))
            })
            .collect::<Result<Vec<_>>>()?;
        loop {
            let until = match self.pump(ASYNC_BUDGET)? {
                Step::Done => break,
                Step::Wait(Some(at)) if at <= Instant::now() => {
                    tokio::task::yield_now().await;
                    continue;
                }
                Step::Wait(until) => until,
            };
            let readable = select_all(registered.iter().map(|fd| Box::pin(fd.readable())));
            let ready = match until {
                Some(at) => tokio::select! {
                    (ready, _, _) = readable => Some(ready),
                    () = tokio::time::sleep_until(at.into()) => None,
                },
                None => Some(readable.await.0),
            };
            // Readiness is edge-triggered: clear it, then `pump` reads until the socket is empty.
            if let Some(ready) = ready {
                ready.map_err(|e| Error::io("waiting for ICMP replies", e))?.clear_ready();
            }
        }
        Ok(self.finish())
    }

    fn finish(self) -> Vec<PingStats> {
        self.sessions.into_iter().map(Session::into_stats).collect()
    }
}
