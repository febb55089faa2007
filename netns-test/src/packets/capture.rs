//! A live capture: the frames one interface has seen so far, in a ring bounded in bytes, for
//! assertions in the test (iterate, wait for one, count) and for a pcap file.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

use super::Frame;
use crate::error::{Error, Result};
use crate::time::later;

/// The bytes a capture keeps at most unless told otherwise (16 MiB).
pub const DEFAULT_CAPTURE_BYTES: usize = 16 << 20;

/// One captured frame: when it was seen, and its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct CapturedFrame {
    /// When the capture saw it, from the moment the capture started.
    pub at: Duration,
    /// When, on the wall clock (for pcap files).
    pub wall: SystemTime,
    /// The frame's bytes, Ethernet header first.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for CapturedFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{:.6}s {}", self.at.as_secs_f64(), self.frame().summary())
    }
}

impl CapturedFrame {
    /// The parsed views of the frame.
    pub fn frame(&self) -> Frame<'_> {
        Frame::new(&self.bytes)
    }
}

/// What the capture's reader and its handles share.
#[derive(Debug)]
pub(crate) struct Ring {
    started: Instant,
    limit: usize,
    state: Mutex<RingState>,
    arrived: Condvar,
    /// Set when the last handle is dropped: the reader stops.
    pub(crate) stopped: AtomicBool,
    /// What the capture is of, for messages: `client:eth0`.
    pub(crate) subject: String,
}

#[derive(Debug, Default)]
struct RingState {
    frames: Vec<CapturedFrame>,
    bytes: usize,
    dropped: u64,
    /// Why the reader stopped early, if it did.
    failed: Option<String>,
}

impl Ring {
    pub(crate) fn new(subject: String, limit: usize) -> Ring {
        Ring {
            started: Instant::now(),
            limit,
            state: Mutex::default(),
            arrived: Condvar::new(),
            stopped: AtomicBool::new(false),
            subject,
        }
    }

    /// Keeps one frame, or counts it dropped when the ring's bytes would pass its limit.
    pub(crate) fn push(&self, bytes: &[u8]) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.bytes + bytes.len() > self.limit {
            state.dropped += 1;
            return;
        }
        state.bytes += bytes.len();
        let frame =
            CapturedFrame { at: self.started.elapsed(), wall: SystemTime::now(), bytes: bytes.to_vec() };
        state.frames.push(frame);
        drop(state);
        self.arrived.notify_all();
    }

    /// Records why the reader stopped.
    pub(crate) fn fail(&self, why: String) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).failed = Some(why);
        self.arrived.notify_all();
    }
}

/// A live capture of one interface (or one direction of a link): the frames seen so far,
/// kept in a ring bounded in bytes. Frames that would pass the bound are not kept and are
/// counted ([`dropped`](Self::dropped)); the ring keeps the first frames, not the latest.
///
/// The capture runs until it is dropped. Frames are read from a packet socket inside the
/// node, so they are what the node's interface sent and received (a sender's TSO
/// superframes appear as the kernel hands them to the interface, larger than the MTU).
pub struct Capture {
    pub(crate) ring: Arc<Ring>,
}

impl fmt::Debug for Capture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capture").field("subject", &self.ring.subject).finish()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.ring.stopped.store(true, Ordering::Release);
    }
}

impl Capture {
    fn state(&self) -> std::sync::MutexGuard<'_, RingState> {
        self.ring.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The frames seen so far, oldest first.
    pub fn frames(&self) -> Vec<CapturedFrame> {
        self.state().frames.clone()
    }

    /// How many frames seen so far match `predicate`.
    pub fn count(&self, predicate: impl Fn(&Frame<'_>) -> bool) -> usize {
        self.state().frames.iter().filter(|captured| predicate(&captured.frame())).count()
    }

    /// Frames not kept because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.state().dropped
    }

    /// The bytes the ring holds now.
    pub fn bytes(&self) -> usize {
        self.state().bytes
    }

    /// Waits until a frame matching `predicate` has been seen (one seen before the call
    /// counts) and returns the first such frame.
    ///
    /// # Errors
    /// [`Error::Timeout`] when none is seen within `timeout` (any length: a long one means
    /// no deadline, it never overflows), naming the capture; [`Error::Io`] when the capture's
    /// socket failed.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        predicate: impl Fn(&Frame<'_>) -> bool,
    ) -> Result<CapturedFrame> {
        let deadline = later(Instant::now(), timeout);
        let mut state = self.state();
        let mut checked = 0;
        loop {
            if let Some(found) = state.frames[checked..].iter().find(|captured| predicate(&captured.frame()))
            {
                return Ok(found.clone());
            }
            checked = state.frames.len();
            if let Some(why) = &state.failed {
                return Err(Error::io(
                    format!("capturing on {}", self.ring.subject),
                    std::io::Error::other(why.clone()),
                ));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout {
                    what: format!("a frame on {} ({what})", self.ring.subject),
                    after: timeout,
                });
            }
            state = self
                .ring
                .arrived
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Writes the frames seen so far to a pcap file at `path` (nanosecond timestamps,
    /// Ethernet), creating its directory.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written.
    pub fn write_pcap(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let what = || format!("writing the capture of {} to {}", self.ring.subject, path.display());
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(what(), e))?;
        }
        let file = std::fs::File::create(path).map_err(|e| Error::io(what(), e))?;
        let header = PcapHeader {
            version_major: 2,
            version_minor: 4,
            ts_correction: 0,
            ts_accuracy: 0,
            snaplen: 262_144,
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::NanoSecond,
            endianness: Endianness::native(),
        };
        let pcap = |e: pcap_file::PcapError| Error::io(what(), std::io::Error::other(e.to_string()));
        let mut writer = PcapWriter::with_header(std::io::BufWriter::new(file), header).map_err(pcap)?;
        for captured in self.frames() {
            let at = captured.wall.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
            writer
                .write_packet(&PcapPacket::new(at, captured.bytes.len() as u32, &captured.bytes))
                .map_err(pcap)?;
        }
        use std::io::Write;
        writer.into_writer().flush().map_err(|e| Error::io(what(), e))
    }
}
