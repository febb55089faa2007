//! Setting up a fresh network namespace from a thread inside it: `lo` up, sysctls, offloads.

use std::io::{self, Write};
use std::os::fd::AsRawFd;

use crate::error::{Error, Result};

/// How a fresh network namespace is set up: what [`set_up`] writes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Setup {
    /// Let unprivileged programs use ICMP echo sockets (`ping` without setuid).
    pub(crate) ping: bool,
    /// The topology has IPv6: addresses then skip duplicate-address detection and survive a
    /// link going down and up. Without it, interfaces get no IPv6 link-local address at all,
    /// hence send no router solicitation or MLD report.
    pub(crate) ipv6: bool,
    /// Forward IPv4 (and IPv6, with `ipv6`) packets: a router.
    pub(crate) forwarding: bool,
    /// Without `ipv6`: the caller turns IPv6 link-local addresses off on each interface as it
    /// creates it (`At::set_no_link_local`, before the interface has carrier), so the
    /// namespace-wide `net.ipv6.conf.default.addr_gen_mode` is not written. That sysctl's
    /// handler spins on RTNL while other namespaces hold it; only namespaces whose interfaces
    /// are all veth ends made by bring-up may skip it (a bridge has carrier, hence a link-local
    /// address, as soon as it is up).
    pub(crate) link_local_per_interface: bool,
}

/// Brings `lo` up and writes the sysctls of `setup`, in the calling thread's network namespace;
/// `place` names it in errors ("node `r1`", "the middle namespace").
pub(crate) fn set_up(place: &str, setup: Setup) -> Result<()> {
    loopback_up().map_err(|e| Error::io(format!("setting lo up in {place}"), e))?;
    if setup.ping {
        // A user namespace maps only group 0, and the kernel refuses a range with unmapped
        // groups.
        if write_sysctl("net.ipv4.ping_group_range", "0 2147483647").is_err() {
            write_sysctl("net.ipv4.ping_group_range", "0 0")
                .map_err(|e| Error::io(format!("setting net.ipv4.ping_group_range in {place}"), e))?;
        }
    }
    let mut settings: Vec<(&str, &str)> = Vec::new();
    if setup.ipv6 {
        // Addresses are added with IFA_F_NODAD; link-local ones must not wait for DAD either,
        // and addresses must survive a link going down and up again.
        settings.extend([
            ("net.ipv6.conf.all.accept_dad", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
            ("net.ipv6.conf.all.keep_addr_on_down", "1"),
            ("net.ipv6.conf.default.keep_addr_on_down", "1"),
        ]);
    } else if !setup.link_local_per_interface {
        settings.push(("net.ipv6.conf.default.addr_gen_mode", "1"));
    }
    if setup.forwarding {
        settings.push(("net.ipv4.ip_forward", "1"));
        if setup.ipv6 {
            settings.push(("net.ipv6.conf.all.forwarding", "1"));
        }
    }
    for (key, value) in settings {
        write_sysctl(key, value).map_err(|e| Error::io(format!("setting {key}={value} in {place}"), e))?;
    }
    Ok(())
}

/// Writes a sysctl of the calling thread's network namespace (`/proc/sys/net` shows the
/// namespace of the thread that opens it).
pub(crate) fn write_sysctl(key: &str, value: &str) -> io::Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let mut file = std::fs::OpenOptions::new().write(true).open(&path)?;
    file.write_all(value.as_bytes())
}

/// Sets `lo` of the calling thread's network namespace up (`ip link set lo up`), with an
/// ioctl on the spot rather than a netlink round trip through the netlink thread.
pub(crate) fn loopback_up() -> io::Result<()> {
    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::DGRAM, None)?;
    // SAFETY: an ifreq is plain data; the ioctls read and write only inside it.
    unsafe {
        let mut request: libc::ifreq = std::mem::zeroed();
        for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
            *slot = *byte as libc::c_char;
        }
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) != 0 {
            return Err(io::Error::last_os_error());
        }
        request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// An offload of `ethtool -K` that [`set_offload`] changes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Offload {
    /// `tso`: TCP segmentation offload (`ETHTOOL_STSO`).
    Tso,
    /// `gro`: generic receive offload (`ETHTOOL_SGRO`).
    Gro,
    /// `tx`: transmit checksum offload (`ETHTOOL_STXCSUM`); the link tests turn it off.
    #[cfg(test)]
    TxChecksum,
}

impl Offload {
    /// The offload's name in `ethtool -K`.
    pub(crate) fn ethtool_name(self) -> &'static str {
        match self {
            Offload::Tso => "tso",
            Offload::Gro => "gro",
            #[cfg(test)]
            Offload::TxChecksum => "tx",
        }
    }
}

/// Turns an offload of interface `ifname` of the calling thread's network namespace on or off
/// (`ethtool -K <ifname> tso|gro|tx on|off`), with the `SIOCETHTOOL` ioctl on `socket`, a
/// socket made in that namespace.
pub(crate) fn set_offload(socket: &impl AsRawFd, ifname: &str, offload: Offload, on: bool) -> io::Result<()> {
    let command: u32 = match offload {
        Offload::Tso => 0x1f,
        Offload::Gro => 0x2c,
        #[cfg(test)]
        Offload::TxChecksum => 0x17,
    };
    if ifname.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "interface name too long"));
    }
    // struct ethtool_value { u32 cmd; u32 data; }
    let mut value = [command, u32::from(on)];
    // SAFETY: an ifreq is plain data; all-zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(ifname.bytes()) {
        *slot = byte as libc::c_char;
    }
    request.ifr_ifru.ifru_data = value.as_mut_ptr().cast();
    // SAFETY: `request` names the interface and points at `value`, both alive for the call.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCETHTOOL, &mut request) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// The sysctls of a NAT router, in the calling thread's network namespace, whose outside
/// interface is `outside`: its own sockets take local ports 61000–65535 (clear of the NAT's
/// outside ports, so that an inbound packet to a mapped port is never the router's), and the
/// outside interface accepts packets whose source is the router's own outside address
/// (hairpinned packets) or an inside address (bounced ones): `rp_filter` off, `accept_local`
/// on.
pub(crate) fn nat_router(outside: &str) -> Result<()> {
    // Paths, not dotted keys: an interface name may hold a dot.
    let settings = [
        ("net/ipv4/ip_local_port_range".to_string(), "61000 65535"),
        ("net/ipv4/conf/all/rp_filter".to_string(), "0"),
        (format!("net/ipv4/conf/{outside}/rp_filter"), "0"),
        ("net/ipv4/conf/all/accept_local".to_string(), "1"),
        (format!("net/ipv4/conf/{outside}/accept_local"), "1"),
    ];
    for (key, value) in settings {
        let path = format!("/proc/sys/{key}");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut file| file.write_all(value.as_bytes()))
            .map_err(|e| Error::io(format!("writing {value:?} to {path}"), e))?;
    }
    Ok(())
}
