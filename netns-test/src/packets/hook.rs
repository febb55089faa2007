//! Per-packet hooks: a Rust closure that decides the fate of each frame entering one direction
//! of a link carried by the user-space engine, and the guard that removes it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use super::Frame;
use crate::conditions::Direction;
use crate::error::Result;

/// What a hook decides for one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// The frame goes on to the link's conditions, as without a hook.
    Pass,
    /// The frame is dropped; it counts in the direction's `hook_drops`.
    Drop,
    /// The frame goes on to the conditions and leaves this much later than they say.
    Delay(Duration),
    /// The frame and one copy of it go on to the conditions, each decided on its own.
    Duplicate,
    /// These bytes (a whole Ethernet frame) go on to the conditions instead of the frame's: a
    /// corruption of the test's choosing. Fewer than 14 bytes (no Ethernet header) is dropped
    /// and counts as a hook drop.
    Replace(Vec<u8>),
}

/// What a hook knows besides the frame: its place in the direction, the direction, and a
/// random generator seeded from the run's seed.
///
/// The generator is ChaCha8, seeded from the link's seed (derived from the network's seed,
/// `NETNS_TEST_SEED` replays it), the direction and how many hooks that direction had
/// before: the same seed and the same frames give the same draws, so a hook's random
/// decisions replay as the conditions' do.
pub struct HookContext {
    index: u64,
    direction: Direction,
    rng: ChaCha8Rng,
}

impl fmt::Debug for HookContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookContext").field("index", &self.index).field("direction", &self.direction).finish()
    }
}

impl HookContext {
    /// A context for `direction`, seeded from `seed` and the direction's `ordinal`-th hook.
    pub(crate) fn new(direction: Direction, seed: u64, ordinal: u64) -> HookContext {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Far above the conditions' stream numbers (a dozen), so that a hook never draws
        // what a condition would.
        rng.set_stream((1 << 32) + ordinal * 2 + direction.index() as u64);
        HookContext { index: 0, direction, rng }
    }

    /// The frame's index among the frames this hook has seen, from 0: the first frame to
    /// enter the direction after the hook was installed is 0. GSO superframes are cut into
    /// their wire packets before the hook sees them, so each wire packet has its own index.
    pub fn index(&self) -> u64 {
        self.index
    }

    pub(crate) fn advance(&mut self) {
        self.index += 1;
    }

    /// The direction the hook is on.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// A random number in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p` (never for `p <= 0`, always for `p >= 1`).
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.uniform() < p
    }
}

/// The closure behind a [`Hook`].
type Decide = Box<dyn FnMut(&Frame<'_>, &mut HookContext) -> Verdict + Send>;

/// A per-packet hook: a closure that decides each frame of one direction of a link, and a
/// description for the timeline.
///
/// Any `FnMut(&Frame, &mut HookContext) -> Verdict + Send + 'static` converts into a hook, so
/// [`LinkHandle::hook_from`](crate::LinkHandle::hook_from) takes a closure as well as the
/// ready-made hooks here ([`drop_nth`](Self::drop_nth), [`drop_nth_matching`](Self::drop_nth_matching)).
pub struct Hook {
    pub(crate) decide: Decide,
    pub(crate) description: String,
}

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hook").field("description", &self.description).finish()
    }
}

impl<F> From<F> for Hook
where
    F: FnMut(&Frame<'_>, &mut HookContext) -> Verdict + Send + 'static,
{
    fn from(decide: F) -> Hook {
        Hook::new("closure", decide)
    }
}

impl Hook {
    /// A hook that runs `decide` on each frame; `description` names it on the timeline.
    pub fn new(
        description: impl Into<String>,
        decide: impl FnMut(&Frame<'_>, &mut HookContext) -> Verdict + Send + 'static,
    ) -> Hook {
        Hook { decide: Box::new(decide), description: description.into() }
    }

    /// A drop list: drops the frames whose ordinals (1 for the first frame the hook sees)
    /// are in `ordinals`, and passes every other. `Hook::drop_nth([3, 5])` drops the 3rd and
    /// the 5th frame.
    pub fn drop_nth(ordinals: impl IntoIterator<Item = u64>) -> Hook {
        let list = DropList::new(ordinals);
        let description = format!("drop list: frames {}", list.describe());
        Hook::new(description, move |_frame: &Frame<'_>, ctx: &mut HookContext| list.verdict(ctx.index() + 1))
    }

    /// A drop list over the frames that match `filter`: drops the matching frames whose
    /// ordinals among the matching frames (from 1) are in `ordinals`, and passes every other
    /// frame. "Drop the 3rd and 5th UDP datagram" is
    /// `Hook::drop_nth_matching([3, 5], "UDP", |frame| frame.udp().is_some())`; `what` names
    /// the matching frames on the timeline.
    pub fn drop_nth_matching(
        ordinals: impl IntoIterator<Item = u64>,
        what: &str,
        filter: impl Fn(&Frame<'_>) -> bool + Send + 'static,
    ) -> Hook {
        let list = DropList::new(ordinals);
        let description = format!("drop list: {what} frames {}", list.describe());
        let mut seen = 0u64;
        Hook::new(description, move |frame: &Frame<'_>, _ctx: &mut HookContext| {
            if !filter(frame) {
                return Verdict::Pass;
            }
            seen += 1;
            list.verdict(seen)
        })
    }

    /// The hook's description, as the timeline shows it.
    pub fn description(&self) -> &str {
        &self.description
    }
}

/// Ordinals to drop, sorted.
struct DropList(Vec<u64>);

impl DropList {
    fn new(ordinals: impl IntoIterator<Item = u64>) -> DropList {
        let mut list: Vec<u64> = ordinals.into_iter().collect();
        list.sort_unstable();
        list.dedup();
        DropList(list)
    }

    fn verdict(&self, ordinal: u64) -> Verdict {
        if self.0.binary_search(&ordinal).is_ok() { Verdict::Drop } else { Verdict::Pass }
    }

    fn describe(&self) -> String {
        let shown: Vec<String> = self.0.iter().take(16).map(u64::to_string).collect();
        let more = if self.0.len() > 16 { format!(" and {} more", self.0.len() - 16) } else { String::new() };
        format!("{}{more}", shown.join(", "))
    }
}

/// What a hook has decided so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HookCounts {
    /// Frames the hook saw.
    pub seen: u64,
    /// Frames it passed on unchanged (without delay).
    pub passed: u64,
    /// Frames it dropped (replacements too short to be frames included).
    pub dropped: u64,
    /// Frames it delayed.
    pub delayed: u64,
    /// Frames it duplicated.
    pub duplicated: u64,
    /// Frames whose bytes it replaced.
    pub replaced: u64,
}

impl fmt::Display for HookCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seen {}, passed {}, dropped {}, delayed {}, duplicated {}, replaced {}",
            self.seen, self.passed, self.dropped, self.delayed, self.duplicated, self.replaced
        )
    }
}

/// The first dropped frames' indexes a hook's state keeps for the timeline.
const DROPS_KEPT: usize = 32;

/// What a hook's guard, the engine thread and the failure report share about one installed
/// hook.
#[derive(Debug)]
pub(crate) struct HookState {
    /// The link and direction, as the timeline names them.
    pub(crate) subject: String,
    pub(crate) description: String,
    seen: AtomicU64,
    passed: AtomicU64,
    dropped: AtomicU64,
    delayed: AtomicU64,
    duplicated: AtomicU64,
    replaced: AtomicU64,
    /// The indexes of the first dropped frames.
    drops: Mutex<Vec<u64>>,
    /// The message of the hook's panic, once it panicked.
    panic: Mutex<Option<String>>,
    /// Whether the hook is still installed.
    pub(crate) active: std::sync::atomic::AtomicBool,
}

/// Adds one to a counter that has one writer (the engine thread).
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

impl HookState {
    pub(crate) fn new(subject: String, description: String) -> HookState {
        HookState {
            subject,
            description,
            seen: AtomicU64::new(0),
            passed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            delayed: AtomicU64::new(0),
            duplicated: AtomicU64::new(0),
            replaced: AtomicU64::new(0),
            drops: Mutex::new(Vec::new()),
            panic: Mutex::new(None),
            active: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Counts one verdict for the frame at `index`.
    pub(crate) fn count(&self, verdict: &Verdict, index: u64) {
        bump(&self.seen);
        match verdict {
            Verdict::Pass => bump(&self.passed),
            Verdict::Drop => self.count_drop(index),
            Verdict::Replace(bytes) if bytes.len() < 14 => self.count_drop(index),
            Verdict::Delay(_) => bump(&self.delayed),
            Verdict::Duplicate => bump(&self.duplicated),
            Verdict::Replace(_) => bump(&self.replaced),
        }
    }

    fn count_drop(&self, index: u64) {
        bump(&self.dropped);
        let mut drops = self.drops.lock().unwrap_or_else(PoisonError::into_inner);
        if drops.len() < DROPS_KEPT {
            drops.push(index);
        }
    }

    pub(crate) fn counts(&self) -> HookCounts {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        HookCounts {
            seen: get(&self.seen),
            passed: get(&self.passed),
            dropped: get(&self.dropped),
            delayed: get(&self.delayed),
            duplicated: get(&self.duplicated),
            replaced: get(&self.replaced),
        }
    }

    /// The indexes of the first frames dropped (at most 32).
    pub(crate) fn dropped_indexes(&self) -> Vec<u64> {
        self.drops.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Records the hook's panic; the engine removes the hook.
    pub(crate) fn set_panic(&self, message: String) {
        *self.panic.lock().unwrap_or_else(PoisonError::into_inner) = Some(message);
        self.active.store(false, Ordering::Release);
    }

    /// The message of the hook's panic, if it panicked.
    pub(crate) fn panic_message(&self) -> Option<String> {
        self.panic.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// One line for the timeline and the failure report: counts, then the dropped indexes.
    pub(crate) fn summary(&self) -> String {
        let counts = self.counts();
        let drops = self.dropped_indexes();
        let mut text = format!("{}: {counts}", self.description);
        if !drops.is_empty() {
            let list: Vec<String> = drops.iter().map(u64::to_string).collect();
            let more = if counts.dropped > drops.len() as u64 { ", …" } else { "" };
            text.push_str(&format!("; dropped indexes {}{more}", list.join(", ")));
        }
        text
    }
}

/// Removes a hook when dropped (or by [`remove`](Self::remove)): the frames that follow pass
/// as without it. Returned by [`LinkHandle::hook_from`](crate::LinkHandle::hook_from).
#[must_use = "the hook is removed when the guard is dropped"]
pub struct HookGuard {
    pub(crate) state: Arc<HookState>,
    pub(crate) remove: Option<Box<dyn FnOnce() -> Result<()> + Send>>,
}

impl fmt::Debug for HookGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookGuard")
            .field("subject", &self.state.subject)
            .field("description", &self.state.description)
            .finish()
    }
}

impl HookGuard {
    /// What the hook has decided so far.
    pub fn counts(&self) -> HookCounts {
        self.state.counts()
    }

    /// The indexes ([`HookContext::index`]) of the first frames the hook dropped, at most 32.
    pub fn dropped_indexes(&self) -> Vec<u64> {
        self.state.dropped_indexes()
    }

    /// Whether the hook panicked (it was then removed, and the test fails with its message).
    pub fn panicked(&self) -> bool {
        self.state.panic_message().is_some()
    }

    /// Removes the hook now. Once this returns, no frame meets the hook.
    ///
    /// # Errors
    /// [`Error::Timeout`](crate::Error::Timeout) when the engine thread does not answer.
    pub fn remove(mut self) -> Result<()> {
        self.remove.take().map_or(Ok(()), |remove| remove())
    }
}

impl Drop for HookGuard {
    fn drop(&mut self) {
        if let Some(remove) = self.remove.take() {
            let _ = remove();
        }
    }
}
