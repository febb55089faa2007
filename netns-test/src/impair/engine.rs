//! The user-space engine: one thread that carries the frames of every impaired link of a test
//! between the link's two middle veth ends, applying each direction's conditions.
//!
//! The thread waits in `epoll` on the AF_PACKET socket of each middle end, a `timerfd` armed
//! for the next departure (absolute, on the monotonic clock, with 1 ns timer slack: sub-ms
//! precision) and an `eventfd` that wakes it for commands. Frames are decided in the order
//! they arrive, per direction, by that direction's [`Decider`], and held in one departure
//! heap until their time comes. This file is the handle the rest of the crate holds and what
//! it shares with the thread; the thread itself is in `engine/run.rs`.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

mod run;

use self::run::Runner;
pub(crate) use self::run::monotonic_ns;
use super::capture::Capture;
use super::decide::Decider;
use super::nat::Translator;
use super::packet::{PacketSocket, Port};
use crate::conditions::{Conditions, Direction, DirectionCounters, ValidConditions};
use crate::error::{Error, Result};
use crate::packets::{Hook, HookContext, HookState};
use crate::timeline::Timeline;

/// How long a caller waits for the engine thread to answer a command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// The most frames read from one socket before the engine looks at its other work, so that a
/// busy direction cannot starve the timers or the other links.
const BATCH: usize = 64;

/// Wire packets and bytes held per direction at most (in delay or in the rate queue),
/// whatever the conditions: a bound on memory for a fast sender behind a long delay. Frames
/// beyond it count as queue drops.
const MAX_HELD: u64 = 100_000;
const MAX_HELD_BYTES: u64 = 256 << 20;

/// What the engine needs to carry one link.
pub(crate) struct LinkSpec {
    /// The link's name, for messages and counters.
    pub(crate) label: String,
    /// The middle end on node `a`'s side.
    pub(crate) a: Port,
    /// The middle end on node `b`'s side.
    pub(crate) b: Port,
    /// The conditions a→b and b→a.
    pub(crate) conditions: [ValidConditions; 2],
    /// The seed of both directions (a direction's own seed in its conditions wins).
    pub(crate) seed: u64,
    /// Where to write a pcap file of every frame the link delivers.
    pub(crate) capture: Option<PathBuf>,
    /// The NAT translating on this link, when it is a NAT's outside link.
    pub(crate) nat: Option<NatPort>,
}

/// A NAT's translator as a link carries it.
#[derive(Clone)]
pub(crate) struct NatPort {
    /// The translator, shared with the NAT's handle (which reads its mappings and changes it
    /// between two frames).
    pub(crate) translator: Arc<Mutex<Translator>>,
    /// The direction of the link whose frames leave the router (its outbound direction).
    pub(crate) outbound: Direction,
}

/// A link carried by an [`Engine`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct LinkId(usize);

/// The counters of one direction, written by the engine thread, read by anyone.
#[derive(Default)]
struct Counters {
    frames_in: AtomicU64,
    bytes_in: AtomicU64,
    frames_out: AtomicU64,
    bytes_out: AtomicU64,
    lost: AtomicU64,
    queue_drops: AtomicU64,
    duplicated: AtomicU64,
    corrupted: AtomicU64,
    reordered: AtomicU64,
    spared: AtomicU64,
    overruns: AtomicU64,
    send_errors: AtomicU64,
    superframes: AtomicU64,
    hook_drops: AtomicU64,
    /// Wire packets held now (not a counter: goes down as frames leave).
    held: AtomicU64,
    /// Bytes held now.
    held_bytes: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> DirectionCounters {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        DirectionCounters {
            frames_in: get(&self.frames_in),
            bytes_in: get(&self.bytes_in),
            frames_out: get(&self.frames_out),
            bytes_out: get(&self.bytes_out),
            lost: get(&self.lost),
            queue_drops: get(&self.queue_drops),
            duplicated: get(&self.duplicated),
            corrupted: get(&self.corrupted),
            reordered: get(&self.reordered),
            spared: get(&self.spared),
            overruns: get(&self.overruns),
            send_errors: get(&self.send_errors),
            superframes: get(&self.superframes),
            hook_drops: get(&self.hook_drops),
        }
    }
}

/// What the engine knows of a link outside its thread.
struct LinkShared {
    label: String,
    counters: [Counters; 2],
}

/// A link as the engine thread holds it.
struct EngineLink {
    shared: Arc<LinkShared>,
    sockets: [PacketSocket; 2],
    deciders: [Decider; 2],
    capture: Option<Capture>,
    /// The per-packet hook of each direction.
    hooks: [Option<Box<Installed>>; 2],
    /// How many hooks each direction has had, which seeds the next one's generator.
    hook_ordinals: [u64; 2],
    /// The link's seed, for the hooks' generators.
    seed: u64,
    /// The NAT translating on the link.
    nat: Option<NatPort>,
}

/// A hook as the engine thread runs it.
pub(crate) struct Installed {
    hook: Hook,
    ctx: Option<HookContext>,
    state: Arc<HookState>,
    /// Where the hook's panic is recorded.
    timeline: Timeline,
}

impl Installed {
    /// A hook ready to install; its generator is seeded when the engine installs it.
    pub(crate) fn new(hook: Hook, state: Arc<HookState>, timeline: Timeline) -> Installed {
        Installed { hook, ctx: None, state, timeline }
    }
}

enum Command {
    Attach(Box<EngineLink>, SyncSender<io::Result<()>>),
    SetConditions(LinkId, Direction, Box<Conditions>, SyncSender<io::Result<()>>),
    /// Installs (or, with `None`, removes) the hook of one direction.
    SetHook(LinkId, Direction, Option<Box<Installed>>, SyncSender<io::Result<()>>),
    Flush(SyncSender<io::Result<()>>),
}

/// The state shared by the engine's handle and its thread.
struct Shared {
    commands: Mutex<Vec<Command>>,
    wake: OwnedFd,
    stop: AtomicBool,
}

impl Shared {
    fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a u64 to an eventfd, as eventfd(2) requires.
        unsafe { libc::write(self.wake.as_raw_fd(), (&raw const one).cast(), 8) };
    }
}

/// The engine: one thread carrying every impaired link of the test.
pub(crate) struct Engine {
    shared: Arc<Shared>,
    links: Mutex<Vec<Arc<LinkShared>>>,
    /// Every hook installed so far, for the failure report and the hooks' panics.
    hooks: Mutex<Vec<Arc<HookState>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Engine")
            .field("links", &links.iter().map(|w| w.label.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

impl Engine {
    /// Starts the engine thread, with no link yet.
    pub(crate) fn start() -> Result<Engine> {
        let runner =
            Runner::new().map_err(|e| Error::io("starting the link engine (epoll, timerfd, eventfd)", e))?;
        let shared = Arc::clone(&runner.shared);
        let thread = thread::Builder::new()
            .name("netns-test-link".into())
            .spawn(move || runner.run())
            .map_err(|e| Error::io("starting the link engine thread", e))?;
        Ok(Engine {
            shared,
            links: Mutex::new(Vec::new()),
            hooks: Mutex::new(Vec::new()),
            thread: Some(thread),
        })
    }

    /// Starts carrying a link: opens its sockets in its namespace, then hands it to the
    /// engine thread. Frames flow from the moment this returns. The conditions were validated
    /// before the engine was chosen (by the plan, or by the backend at runtime).
    ///
    /// # Errors
    /// [`Error::Io`] when a socket or the capture file cannot be opened.
    pub(crate) fn attach(&self, spec: LinkSpec) -> Result<LinkId> {
        let sockets = [PacketSocket::open(&spec.a)?, PacketSocket::open(&spec.b)?];
        let capture = spec.capture.as_deref().map(Capture::create).transpose()?;
        let [forward, backward] = spec.conditions;
        let shared = Arc::new(LinkShared { label: spec.label.clone(), counters: Default::default() });
        let link = EngineLink {
            shared: Arc::clone(&shared),
            sockets,
            deciders: [
                Decider::new(forward.into_inner(), spec.seed, Direction::AToB),
                Decider::new(backward.into_inner(), spec.seed, Direction::BToA),
            ],
            capture,
            hooks: [None, None],
            hook_ordinals: [0, 0],
            seed: spec.seed,
            nat: spec.nat,
        };
        let mut links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        let id = LinkId(links.len());
        self.command(&format!("attaching link `{}`", spec.label), |reply| {
            Command::Attach(Box::new(link), reply)
        })?;
        links.push(shared);
        Ok(id)
    }

    /// Changes the conditions of one direction; they apply from the next frame on (frames already in the link keep their departure time). Returns once the
    /// engine has them.
    ///
    /// # Errors
    /// [`Error::Timeout`] when the engine thread does not answer.
    pub(crate) fn set_conditions(
        &self,
        id: LinkId,
        direction: Direction,
        conditions: ValidConditions,
    ) -> Result<()> {
        let label = self.label(id);
        self.command(&format!("changing the conditions of link `{label}` {direction}"), |reply| {
            Command::SetConditions(id, direction, Box::new(conditions.into_inner()), reply)
        })
    }

    /// Installs `hook` on `direction` of link `id`, replacing none: a direction has one hook
    /// at most. Frames that enter after this returns meet the hook.
    ///
    /// # Errors
    /// [`Error::Unsupported`] when the direction has a hook already; [`Error::Timeout`] when
    /// the engine thread does not answer.
    pub(crate) fn install_hook(&self, id: LinkId, direction: Direction, hook: Installed) -> Result<()> {
        let state = Arc::clone(&hook.state);
        let label = self.label(id);
        let mut hooks = self.hooks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(other) =
            hooks.iter().find(|other| other.subject == state.subject && other.active.load(Ordering::Acquire))
        {
            return Err(Error::Unsupported {
                feature: format!("a second hook on {}", state.subject),
                reason: format!(
                    "that direction has a hook already ({}); remove it (drop its guard) first",
                    other.description
                ),
            });
        }
        self.command(&format!("installing a hook on link `{label}` {direction}"), |reply| {
            Command::SetHook(id, direction, Some(Box::new(hook)), reply)
        })?;
        hooks.push(state);
        Ok(())
    }

    /// Removes the hook `state` from `direction` of link `id`, if it is still there.
    ///
    /// # Errors
    /// [`Error::Timeout`] when the engine thread does not answer.
    pub(crate) fn remove_hook(&self, id: LinkId, direction: Direction, state: &HookState) -> Result<()> {
        if !state.active.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let label = self.label(id);
        self.command(&format!("removing the hook on link `{label}` {direction}"), |reply| {
            Command::SetHook(id, direction, None, reply)
        })
    }

    /// Every hook installed so far, removed or not.
    pub(crate) fn hooks(&self) -> Vec<Arc<HookState>> {
        self.hooks.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The counters of both directions (a→b, b→a).
    pub(crate) fn counters(&self, id: LinkId) -> [DirectionCounters; 2] {
        let links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        let link = &links[id.0];
        [link.counters[0].snapshot(), link.counters[1].snapshot()]
    }

    /// Writes out every capture file now (the engine also does after each round of work; call
    /// this before reporting a failure to be sure).
    pub(crate) fn flush(&self) -> Result<()> {
        self.command("flushing the link captures", Command::Flush)
    }

    fn label(&self, id: LinkId) -> String {
        self.links.lock().unwrap_or_else(PoisonError::into_inner)[id.0].label.clone()
    }

    fn command(&self, what: &str, make: impl FnOnce(SyncSender<io::Result<()>>) -> Command) -> Result<()> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.shared.commands.lock().unwrap_or_else(PoisonError::into_inner).push(make(reply));
        self.shared.wake();
        match answer.recv_timeout(COMMAND_TIMEOUT) {
            Ok(result) => result.map_err(|e| Error::io(what, e)),
            Err(_) => {
                Err(Error::Timeout { what: format!("the link engine ({what})"), after: COMMAND_TIMEOUT })
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
