//! A frame as a hook or a capture sees it: its bytes, and views of its layers parsed on
//! demand with `pnet_packet`, borrowing the bytes (nothing is copied or parsed up front).

use std::fmt;
use std::net::IpAddr;

use pnet_packet::arp::ArpPacket;
use pnet_packet::ethernet::{EtherTypes, EthernetPacket};
use pnet_packet::icmp::{IcmpPacket, IcmpTypes};
use pnet_packet::icmpv6::{Icmpv6Packet, Icmpv6Types};
use pnet_packet::ip::{IpNextHeaderProtocol, IpNextHeaderProtocols};
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::ipv6::Ipv6Packet;
use pnet_packet::tcp::{TcpFlags, TcpPacket};
use pnet_packet::udp::UdpPacket;

/// The length of an Ethernet header without a VLAN tag.
const ETHERNET_LEN: usize = 14;

/// One Ethernet frame, borrowed: its bytes and views of its layers.
///
/// Each view parses only the headers it needs when it is asked for, and borrows the frame's
/// bytes. A view is `None` when the frame is not of that kind or is too short for it. The
/// transport views (`udp`, `tcp`, `icmp`, `icmpv6`) see the IP payload as the IP header
/// bounds it (Ethernet padding excluded) and are `None` for a fragment other than the first;
/// IPv6 extension headers (hop-by-hop, routing, destination options, fragment) are skipped.
#[derive(Clone, Copy)]
pub struct Frame<'a> {
    bytes: &'a [u8],
}

impl fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame").field("len", &self.bytes.len()).field("summary", &self.summary()).finish()
    }
}

impl<'a> Frame<'a> {
    /// A view of `bytes`, which start with the Ethernet header.
    pub fn new(bytes: &'a [u8]) -> Frame<'a> {
        Frame { bytes }
    }

    /// The frame's bytes, Ethernet header first.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The frame's length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the frame has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The Ethernet header and payload.
    pub fn ethernet(&self) -> Option<EthernetPacket<'a>> {
        EthernetPacket::new(self.bytes)
    }

    /// The EtherType (`0x0800` for IPv4, `0x86dd` for IPv6, `0x0806` for ARP).
    pub fn ethertype(&self) -> Option<u16> {
        let bytes = self.bytes.get(12..ETHERNET_LEN)?;
        Some(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn l3(&self, ethertype: u16) -> Option<&'a [u8]> {
        (self.ethertype()? == ethertype).then(|| &self.bytes[ETHERNET_LEN..])
    }

    /// The ARP packet, for an ARP frame.
    pub fn arp(&self) -> Option<ArpPacket<'a>> {
        ArpPacket::new(self.l3(EtherTypes::Arp.0)?)
    }

    /// The IPv4 packet, for an IPv4 frame.
    pub fn ipv4(&self) -> Option<Ipv4Packet<'a>> {
        Ipv4Packet::new(self.l3(EtherTypes::Ipv4.0)?)
    }

    /// The IPv6 packet, for an IPv6 frame.
    pub fn ipv6(&self) -> Option<Ipv6Packet<'a>> {
        Ipv6Packet::new(self.l3(EtherTypes::Ipv6.0)?)
    }

    /// The source address of an IPv4 or IPv6 frame.
    pub fn source(&self) -> Option<IpAddr> {
        match self.ethertype()? {
            0x0800 => Some(self.ipv4()?.get_source().into()),
            0x86dd => Some(self.ipv6()?.get_source().into()),
            _ => None,
        }
    }

    /// The destination address of an IPv4 or IPv6 frame.
    pub fn destination(&self) -> Option<IpAddr> {
        match self.ethertype()? {
            0x0800 => Some(self.ipv4()?.get_destination().into()),
            0x86dd => Some(self.ipv6()?.get_destination().into()),
            _ => None,
        }
    }

    /// The transport protocol and the bytes of its header and payload, for an IPv4 or IPv6
    /// frame that is not a later fragment.
    pub fn transport(&self) -> Option<(IpNextHeaderProtocol, &'a [u8])> {
        match self.ethertype()? {
            0x0800 => ipv4_payload(&self.bytes[ETHERNET_LEN..]),
            0x86dd => ipv6_payload(&self.bytes[ETHERNET_LEN..]),
            _ => None,
        }
    }

    fn l4(&self, protocol: IpNextHeaderProtocol) -> Option<&'a [u8]> {
        let (found, bytes) = self.transport()?;
        (found == protocol).then_some(bytes)
    }

    /// The UDP datagram, over IPv4 or IPv6.
    pub fn udp(&self) -> Option<UdpPacket<'a>> {
        UdpPacket::new(self.l4(IpNextHeaderProtocols::Udp)?)
    }

    /// The TCP segment, over IPv4 or IPv6.
    pub fn tcp(&self) -> Option<TcpPacket<'a>> {
        TcpPacket::new(self.l4(IpNextHeaderProtocols::Tcp)?)
    }

    /// The ICMP message, over IPv4.
    pub fn icmp(&self) -> Option<IcmpPacket<'a>> {
        IcmpPacket::new(self.l4(IpNextHeaderProtocols::Icmp)?)
    }

    /// The ICMPv6 message, over IPv6.
    pub fn icmpv6(&self) -> Option<Icmpv6Packet<'a>> {
        Icmpv6Packet::new(self.l4(IpNextHeaderProtocols::Icmpv6)?)
    }

    /// The payload of the UDP datagram (the bytes its length field covers).
    pub fn udp_payload(&self) -> Option<&'a [u8]> {
        let bytes = self.l4(IpNextHeaderProtocols::Udp)?;
        let length = usize::from(u16::from_be_bytes([*bytes.get(4)?, *bytes.get(5)?]));
        bytes.get(8..length.clamp(8, bytes.len()))
    }

    /// A TCP segment with SYN set and ACK clear: the first segment of a handshake.
    pub fn is_tcp_syn(&self) -> bool {
        self.tcp_flags().is_some_and(|flags| flags & (TcpFlags::SYN | TcpFlags::ACK) == TcpFlags::SYN)
    }

    /// A TCP segment with SYN and ACK set: the second segment of a handshake.
    pub fn is_tcp_syn_ack(&self) -> bool {
        self.tcp_flags()
            .is_some_and(|flags| flags & (TcpFlags::SYN | TcpFlags::ACK) == TcpFlags::SYN | TcpFlags::ACK)
    }

    /// The TCP flags byte (`pnet_packet::tcp::TcpFlags`), for a TCP segment.
    pub fn tcp_flags(&self) -> Option<u8> {
        let bytes = self.l4(IpNextHeaderProtocols::Tcp)?;
        bytes.get(13).copied().filter(|_| bytes.len() >= 20)
    }

    /// An ICMP echo request (IPv4) or ICMPv6 echo request.
    pub fn is_echo_request(&self) -> bool {
        self.icmp().is_some_and(|icmp| icmp.get_icmp_type() == IcmpTypes::EchoRequest)
            || self.icmpv6().is_some_and(|icmp| icmp.get_icmpv6_type() == Icmpv6Types::EchoRequest)
    }

    /// An ICMP echo reply (IPv4) or ICMPv6 echo reply.
    pub fn is_echo_reply(&self) -> bool {
        self.icmp().is_some_and(|icmp| icmp.get_icmp_type() == IcmpTypes::EchoReply)
            || self.icmpv6().is_some_and(|icmp| icmp.get_icmpv6_type() == Icmpv6Types::EchoReply)
    }

    /// A short description for messages: `udp 10.0.0.1:5000 → 10.0.0.2:53, 40 B`.
    pub fn summary(&self) -> String {
        let len = self.bytes.len();
        let (Some(source), Some(destination)) = (self.source(), self.destination()) else {
            return match self.ethertype() {
                Some(0x0806) => format!("arp, {len} B"),
                Some(ethertype) => format!("ethertype {ethertype:#06x}, {len} B"),
                None => format!("runt, {len} B"),
            };
        };
        let ports = |bytes: &[u8]| {
            (bytes.len() >= 4)
                .then(|| (u16::from_be_bytes([bytes[0], bytes[1]]), u16::from_be_bytes([bytes[2], bytes[3]])))
        };
        match self.transport() {
            Some((protocol, bytes))
                if protocol == IpNextHeaderProtocols::Udp || protocol == IpNextHeaderProtocols::Tcp =>
            {
                let name = if protocol == IpNextHeaderProtocols::Udp { "udp" } else { "tcp" };
                match ports(bytes) {
                    Some((sport, dport)) => {
                        format!("{name} {source}:{sport} → {destination}:{dport}, {len} B")
                    }
                    None => format!("{name} {source} → {destination}, {len} B"),
                }
            }
            Some((protocol, _)) => format!("{protocol} {source} → {destination}, {len} B"),
            None => format!("ip {source} → {destination}, {len} B"),
        }
    }
}

/// The transport bytes of an IPv4 packet, bounded by its total length.
fn ipv4_payload(packet: &[u8]) -> Option<(IpNextHeaderProtocol, &[u8])> {
    let first = *packet.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let header = usize::from(first & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
    let fragment_offset = u16::from_be_bytes([*packet.get(6)?, *packet.get(7)?]) & 0x1fff;
    if header < 20 || fragment_offset != 0 {
        return None;
    }
    let end = total.clamp(header, packet.len());
    Some((IpNextHeaderProtocol(*packet.get(9)?), packet.get(header..end)?))
}

/// The transport bytes of an IPv6 packet, after its extension headers, bounded by its payload
/// length.
fn ipv6_payload(packet: &[u8]) -> Option<(IpNextHeaderProtocol, &[u8])> {
    if packet.first()? >> 4 != 6 || packet.len() < 40 {
        return None;
    }
    let payload = usize::from(u16::from_be_bytes([packet[4], packet[5]]));
    let mut rest = &packet[40..(40 + payload).min(packet.len())];
    let mut next = packet[6];
    // Extension headers are few; the bound keeps a crafted chain from looping long.
    for _ in 0..8 {
        match next {
            // Hop-by-hop, routing, destination options: length in 8-byte units past the first 8.
            0 | 43 | 60 => {
                let len = (usize::from(*rest.get(1)?) + 1) * 8;
                next = *rest.first()?;
                rest = rest.get(len..)?;
            }
            // Fragment: 8 bytes; only the first fragment carries the transport header.
            44 => {
                let offset = u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?]) >> 3;
                if offset != 0 {
                    return None;
                }
                next = *rest.first()?;
                rest = rest.get(8..)?;
            }
            _ => return Some((IpNextHeaderProtocol(next), rest)),
        }
    }
    None
}
