//! Packet capture: every frame an impaired link delivers, in a pcap file per link.
//!
//! Frames are written as they leave the link (after loss, duplication and corruption), with
//! nanosecond wall-clock timestamps, so the file shows what the receiving ends saw. The
//! engine flushes after every round of work, so the file is complete up to the last frame
//! even if the test process is killed right after.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{Endianness, TsResolution};

use crate::error::{Error, Result};

/// The largest frame kept whole (as tcpdump's default snap length).
const SNAPLEN: u32 = 262_144;

/// A pcap file being written.
pub(crate) struct Capture {
    path: PathBuf,
    file: File,
    /// pcap-file's writer, writing into `pending` (it gives no way to flush a buffered writer
    /// it owns, so the buffer is shared and written to the file here).
    writer: PcapWriter<Pending>,
    pending: Pending,
    failed: bool,
}

/// Bytes formatted by the pcap writer, not yet written to the file.
#[derive(Clone, Default)]
struct Pending(Arc<Mutex<Vec<u8>>>);

impl Write for Pending {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// Creates (or truncates) `path`, creating its directory, and writes the pcap header.
    pub(crate) fn create(path: &Path) -> Result<Self> {
        let what = || format!("creating the capture file {}", path.display());
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(what(), e))?;
        }
        let file = File::create(path).map_err(|e| Error::io(what(), e))?;
        let pending = Pending::default();
        let writer = PcapWriter::with_header(pending.clone(), header())
            .map_err(|e| Error::io(what(), pcap_error(e)))?;
        let mut capture = Capture { path: path.to_path_buf(), file, writer, pending, failed: false };
        capture.flush();
        if capture.failed {
            return Err(Error::io(what(), io::Error::other("the pcap header could not be written")));
        }
        Ok(capture)
    }

    /// Records one frame sent at `timestamp` (since the Unix epoch).
    pub(crate) fn write(&mut self, timestamp: Duration, frame: &[u8]) {
        if self.failed {
            return;
        }
        let kept = &frame[..frame.len().min(SNAPLEN as usize)];
        let written = self.writer.write_packet(&PcapPacket::new(timestamp, frame.len() as u32, kept));
        self.note(written.map(|_| ()).map_err(pcap_error));
    }

    /// Writes the frames recorded so far to the file: one write(2), only when there are any.
    pub(crate) fn flush(&mut self) {
        let mut pending = self.pending.0.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.is_empty() || self.failed {
            return;
        }
        let written = self.file.write_all(&pending);
        pending.clear();
        drop(pending);
        self.note(written);
    }

    /// A capture that cannot be written stops, with one message, rather than failing the link.
    fn note(&mut self, result: io::Result<()>) {
        if let Err(error) = result {
            self.failed = true;
            eprintln!("netns-test: capture to {} stopped: {error}", self.path.display());
        }
    }
}

fn header() -> PcapHeader {
    PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen: SNAPLEN,
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::NanoSecond,
        endianness: Endianness::native(),
    }
}

fn pcap_error(error: pcap_file::PcapError) -> io::Error {
    match error {
        pcap_file::PcapError::IoError(error) => error,
        other => io::Error::other(other.to_string()),
    }
}
