//! `capture`: frames crossing one end of a link, written to a pcap file, from inside the node
//! (an `AF_PACKET` socket on the interface sees both directions).

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use pcap_file::pcap::{PcapPacket, PcapWriter};

use crate::CliError;
use crate::control::{Reply, Request, ask};
use crate::{enter, registry};

/// Captures `count` frames (or until interrupted) at end `a` of `link` (`A-B`) of `lab`.
pub(crate) fn capture(lab: &str, link: &str, file: &Path, count: Option<u64>) -> Result<(), CliError> {
    registry::require(lab)?;
    let socket = registry::entry_dir(lab)?.join("control.sock");
    let (node, iface) = match ask(&socket, &Request::Info)?.0 {
        Reply::Info { nodes, links } => link
            .match_indices('-')
            .find_map(|(at, _)| {
                let (a, b) = (&link[..at], &link[at + 1..]);
                let node = nodes.iter().find(|n| n.name == a)?;
                let (iface, _) = node.peers.iter().find(|(_, peer)| peer == b)?;
                Some((a.to_string(), iface.clone()))
            })
            .ok_or_else(|| {
                CliError::Lab(format!("unknown link `{link}`; the lab's links: {}", links.join(", ")))
            })?,
        Reply::Error { message } => return Err(CliError::Lab(message)),
        other => return Err(CliError::Lab(format!("unexpected reply {other:?}"))),
    };
    // The file is made before entering the lab, as the user who asked, where they asked. It
    // is not buffered: each frame reaches it at once, so it is whole however this ends.
    let out = File::create(file).map_err(|e| CliError::io(format!("creating {}", file.display()), e))?;
    let mut writer =
        PcapWriter::new(out).map_err(|e| CliError::Usage(format!("writing the pcap header: {e}")))?;
    enter::enter(lab, &node)?;
    let packet = open_packet_socket(&iface)?;
    eprintln!("capturing on {node}:{iface} (link {link}) into {}", file.display());
    let mut buffer = vec![0u8; 65536];
    let mut seen = 0u64;
    while count.is_none_or(|count| seen < count) {
        // SAFETY: recv into a buffer this function owns, of the length given.
        let n = unsafe {
            libc::recv(packet.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len(), libc::MSG_TRUNC)
        };
        if n < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(CliError::io("reading frames", error));
        }
        let length = n as usize;
        let time = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let data = &buffer[..length.min(buffer.len())];
        writer
            .write_packet(&PcapPacket::new(time, u32::try_from(length).unwrap_or(u32::MAX), data))
            .map_err(|e| CliError::Usage(format!("writing {}: {e}", file.display())))?;
        seen += 1;
    }
    eprintln!("{seen} frames captured");
    Ok(())
}

fn open_packet_socket(iface: &str) -> Result<OwnedFd, CliError> {
    let protocol = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd =
        unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(protocol)) };
    if fd < 0 {
        return Err(CliError::io("opening a packet socket", std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let name =
        std::ffi::CString::new(iface).map_err(|_| CliError::Usage(format!("bad interface name {iface}")))?;
    // SAFETY: if_nametoindex reads a NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(CliError::io(format!("finding interface {iface}"), std::io::Error::last_os_error()));
    }
    // SAFETY: a zeroed sockaddr_ll is valid; the fields set are those bind(2) reads.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = protocol;
    address.sll_ifindex = index as i32;
    // SAFETY: bind with a sockaddr_ll of the size given.
    let bound = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&address as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if bound != 0 {
        return Err(CliError::io(format!("binding to {iface}"), std::io::Error::last_os_error()));
    }
    Ok(fd)
}
