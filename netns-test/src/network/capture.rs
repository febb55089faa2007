//! Live captures on any interface of a node, impaired or not, through a packet socket inside
//! the node; and a link direction's capture, on the interface that receives it.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;

use super::{LinkHandle, Node};
use crate::error::{Error, Result};
use crate::impair::packet::bound_packet_socket;
use crate::ns;
use crate::packets::Capture;
use crate::packets::capture::{DEFAULT_CAPTURE_BYTES, Ring};

/// The largest frame kept whole: a 64 KB superframe with its headers.
const SNAP: usize = 65_536 + 1024;

impl Node {
    /// Starts a live capture of every frame interface `iface` sends and receives, keeping at
    /// most [`DEFAULT_CAPTURE_BYTES`] (see [`capture_bounded`](Self::capture_bounded)).
    /// Works on any interface, whether the engine carries its link or not: the frames are
    /// read from a packet socket inside the node, and the link is left as it is.
    ///
    /// # Errors
    /// [`Error::UnknownInterface`]; [`Error::Io`] when the socket cannot be opened.
    pub fn capture(&self, iface: &str) -> Result<Capture> {
        self.capture_bounded(iface, DEFAULT_CAPTURE_BYTES)
    }

    /// As [`capture`](Self::capture), keeping at most `limit` bytes of frames; the frames
    /// past it are counted in [`Capture::dropped`].
    ///
    /// # Errors
    /// As [`capture`](Self::capture).
    pub fn capture_bounded(&self, iface: &str, limit: usize) -> Result<Capture> {
        self.start_capture(iface, limit, false, format!("{}:{iface}", self.name()))
    }

    fn start_capture(
        &self,
        iface: &str,
        limit: usize,
        incoming_only: bool,
        subject: String,
    ) -> Result<Capture> {
        let index = self.interface(iface)?.index();
        let what = || format!("opening a packet socket on {subject}");
        let opened =
            ns::run_in(self.fds(), "netns-test-capture", || bound_packet_socket(index, 0, |_| Ok(())));
        let fd = opened.map_err(io::Error::from).and_then(|fd| fd).map_err(|e| Error::io(what(), e))?;
        let started = format!("starting the capture thread of {subject}");
        let ring = Arc::new(Ring::new(subject, limit));
        let reader = Arc::clone(&ring);
        thread::Builder::new()
            .name("netns-test-capture".into())
            .spawn(move || read(&fd, &reader, incoming_only))
            .map_err(|e| Error::io(started, e))?;
        Ok(Capture { ring })
    }
}

impl LinkHandle {
    /// Starts a live capture of the direction that leaves `node`: the frames the link
    /// delivered to the other end, as that end's interface received them (after the link's
    /// conditions and hooks, if it has any). A plain link stays plain: the capture reads from
    /// a packet socket on the receiving interface.
    ///
    /// # Errors
    /// [`Error::UnknownNode`] for a node that is not an end of the link; [`Error::Io`] when
    /// the socket cannot be opened.
    pub fn capture_from(&self, node: &str) -> Result<Capture> {
        // Checks that `node` is an end, with the error that names the ends otherwise.
        self.direction_from(node)?;
        let [(a, a_iface), (b, b_iface)] = self.ends();
        let (receiver, iface) = if a.name() == node { (b, b_iface) } else { (a, a_iface) };
        let subject = format!("{node} → {}:{iface}", receiver.name());
        receiver.start_capture(iface, DEFAULT_CAPTURE_BYTES, true, subject)
    }
}

/// Reads frames into the ring until the capture is dropped; wakes every 100 ms to see.
fn read(fd: &OwnedFd, ring: &Ring, incoming_only: bool) {
    let mut buffer = vec![0u8; SNAP];
    while !ring.stopped.load(Ordering::Acquire) {
        let mut poll = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut poll, 1, 100) } <= 0 {
            continue;
        }
        loop {
            // SAFETY: sockaddr_ll is plain data, filled by recvfrom.
            let mut from: libc::sockaddr_ll = unsafe { mem::zeroed() };
            let mut len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: the buffer and the address are valid for writes of their lengths.
            let n = unsafe {
                libc::recvfrom(
                    fd.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    libc::MSG_DONTWAIT,
                    (&raw mut from).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                let error = io::Error::last_os_error();
                match error.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => break,
                    _ => return ring.fail(error.to_string()),
                }
            }
            if incoming_only && from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            ring.push(&buffer[..n as usize]);
        }
    }
}
