//! The ICMP and ICMPv6 message formats: echo messages, and the error messages that quote them.
//!
//! Built and parsed with `pnet_packet`. The two raw sockets differ in what they hand over: an
//! IPv4 raw ICMP socket receives the whole IP datagram (header included) but sends the ICMP
//! message alone; an ICMPv6 raw socket receives and sends the ICMPv6 message alone, and the
//! kernel fills in and verifies the ICMPv6 checksum itself (RFC 3542 §3.1), because it covers a
//! pseudo-header with the source address that only the kernel knows.
//!
//! Nothing here does I/O: [`EchoRequest::emit`] writes into a buffer, [`parse_ipv4`] and
//! [`parse_icmpv6`] read one, and the unit tests check both against literal bytes.

use std::fmt;
use std::net::IpAddr;

use pnet_packet::Packet;
use pnet_packet::icmp::echo_reply::EchoReplyPacket;
use pnet_packet::icmp::echo_request::{self as echo_request_v4, MutableEchoRequestPacket};
use pnet_packet::icmp::{self, IcmpCode, IcmpPacket, IcmpTypes};
use pnet_packet::icmpv6::echo_request::{
    self as echo_request_v6, MutableEchoRequestPacket as MutableEchoRequestPacketV6,
};
use pnet_packet::icmpv6::{Icmpv6Code, Icmpv6Packet, Icmpv6Types};
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::ipv6::Ipv6Packet;

/// Length of the echo header: type, code, checksum, identifier, sequence number.
pub(crate) const ECHO_HEADER_LEN: usize = 8;
/// Length of the header of an ICMP error before the quoted datagram.
const ERROR_HEADER_LEN: usize = 8;
/// Length of a fixed IPv6 header.
const IPV6_HEADER_LEN: usize = 40;
/// The largest echo payload over IPv4: 65535 bytes less a 20-byte IP header and the echo header.
pub(crate) const MAX_PAYLOAD_V4: usize = 65_535 - 20 - ECHO_HEADER_LEN;
/// The largest echo payload over IPv6: a 65535-byte IPv6 payload less the echo header.
pub(crate) const MAX_PAYLOAD_V6: usize = 65_535 - ECHO_HEADER_LEN;

/// ICMPv6 message types (RFC 4443); `pnet_packet` names them too, but as non-`const` structs
/// that cannot appear in the BPF programs of the socket layer.
pub(crate) mod icmpv6_type {
    pub(crate) const DESTINATION_UNREACHABLE: u8 = 1;
    pub(crate) const PACKET_TOO_BIG: u8 = 2;
    pub(crate) const TIME_EXCEEDED: u8 = 3;
    pub(crate) const PARAMETER_PROBLEM: u8 = 4;
    pub(crate) const ECHO_REPLY: u8 = 129;
}

/// ICMPv4 message types (RFC 792), for the same reason.
pub(crate) mod icmpv4_type {
    pub(crate) const ECHO_REPLY: u8 = 0;
    pub(crate) const DESTINATION_UNREACHABLE: u8 = 3;
    pub(crate) const TIME_EXCEEDED: u8 = 11;
    pub(crate) const PARAMETER_PROBLEM: u8 = 12;
}

/// The address family of a pinger: which ICMP it speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    V4,
    V6,
}

impl Family {
    pub(crate) fn of(addr: IpAddr) -> Family {
        if addr.is_ipv4() { Family::V4 } else { Family::V6 }
    }

    /// The largest payload an echo request of this family can carry.
    pub(crate) fn max_payload(self) -> usize {
        match self {
            Family::V4 => MAX_PAYLOAD_V4,
            Family::V6 => MAX_PAYLOAD_V6,
        }
    }
}

/// An echo request, as plain data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EchoRequest<'a> {
    pub(crate) ident: u16,
    pub(crate) seq: u16,
    pub(crate) payload: &'a [u8],
}

impl EchoRequest<'_> {
    /// The length of the emitted message.
    pub(crate) fn buffer_len(&self) -> usize {
        ECHO_HEADER_LEN + self.payload.len()
    }

    /// Writes the message into `buffer`, which must be exactly [`buffer_len`](Self::buffer_len)
    /// bytes long. The ICMPv4 checksum is computed here; the ICMPv6 one is left zero for the
    /// kernel to fill in.
    pub(crate) fn emit(&self, family: Family, buffer: &mut [u8]) {
        debug_assert_eq!(buffer.len(), self.buffer_len(), "echo request buffer length");
        match family {
            Family::V4 => {
                let mut packet = MutableEchoRequestPacket::new(buffer).expect("buffer holds the echo header");
                packet.set_icmp_type(IcmpTypes::EchoRequest);
                packet.set_icmp_code(IcmpCode(0));
                packet.set_checksum(0);
                packet.set_identifier(self.ident);
                packet.set_sequence_number(self.seq);
                packet.set_payload(self.payload);
                let checksum =
                    icmp::checksum(&IcmpPacket::new(packet.packet()).expect("an echo is an ICMP message"));
                packet.set_checksum(checksum);
            }
            Family::V6 => {
                let mut packet =
                    MutableEchoRequestPacketV6::new(buffer).expect("buffer holds the echo header");
                packet.set_icmpv6_type(Icmpv6Types::EchoRequest);
                packet.set_icmpv6_code(Icmpv6Code(0));
                packet.set_checksum(0);
                packet.set_identifier(self.ident);
                packet.set_sequence_number(self.seq);
                packet.set_payload(self.payload);
            }
        }
    }
}

/// Rewrites the sequence number of an emitted echo request. The ICMPv4 checksum is updated
/// for the changed field alone (RFC 1624, equation 3) rather than summed over the whole
/// message again: probes differ only in this field, and a flood sends them by the hundred
/// thousand per second.
pub(crate) fn set_seq(family: Family, message: &mut [u8], seq: u16) {
    match family {
        Family::V4 => {
            let mut packet = MutableEchoRequestPacket::new(message).expect("an emitted echo request");
            let old = packet.get_sequence_number();
            packet.set_sequence_number(seq);
            // HC' = ~(~HC + ~m + m'), in one's complement arithmetic.
            let mut sum = u32::from(!packet.get_checksum()) + u32::from(!old) + u32::from(seq);
            sum = (sum & 0xffff) + (sum >> 16);
            sum = (sum & 0xffff) + (sum >> 16);
            packet.set_checksum(!(sum as u16));
        }
        Family::V6 => {
            MutableEchoRequestPacketV6::new(message)
                .expect("an emitted echo request")
                .set_sequence_number(seq);
        }
    }
}

/// A received message that may concern a pinger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Message<'a> {
    /// An echo reply.
    Reply(EchoReply<'a>),
    /// An ICMP error quoting an echo request.
    Error(QuotedError),
}

/// An echo reply, as plain data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EchoReply<'a> {
    pub(crate) ident: u16,
    pub(crate) seq: u16,
    /// The reply's TTL, when the datagram carries it (IPv4); for IPv6 it comes from a control
    /// message instead.
    pub(crate) ttl: Option<u8>,
    /// The ICMP message length, header included (what iputils prints as "N bytes from").
    pub(crate) len: usize,
    pub(crate) payload: &'a [u8],
    /// Whether the ICMPv4 checksum holds. Always true for ICMPv6, which the kernel verified.
    pub(crate) checksum_ok: bool,
}

/// What kind of ICMP error a probe met.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IcmpErrorKind {
    /// Destination unreachable (ICMP type 3 except code 4, ICMPv6 type 1); the code says why.
    DestinationUnreachable,
    /// Time (TTL or hop limit) exceeded in transit (ICMP type 11, ICMPv6 type 3).
    TimeExceeded,
    /// Parameter problem (ICMP type 12, ICMPv6 type 4).
    ParameterProblem,
    /// Packet too big (ICMPv6 type 2): the probe is larger than the next hop's MTU, which
    /// [`IcmpError::mtu`](super::IcmpError::mtu) gives. IPv4's counterpart is
    /// [`FragmentationNeeded`](Self::FragmentationNeeded).
    PacketTooBig,
    /// Fragmentation needed and DF set (ICMP type 3, code 4): a probe sent with
    /// [`dont_fragment`](super::Ping::dont_fragment) is larger than the next hop's MTU, which
    /// [`IcmpError::mtu`](super::IcmpError::mtu) gives (`None` when the router left it out, as
    /// routers older than RFC 1191 do). IPv6's counterpart is
    /// [`PacketTooBig`](Self::PacketTooBig).
    FragmentationNeeded,
}

/// An ICMP error message, and the echo request it quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct QuotedError {
    pub(crate) kind: IcmpErrorKind,
    pub(crate) code: u8,
    /// The MTU of the next hop, for "packet too big" and "fragmentation needed".
    pub(crate) mtu: Option<u32>,
    pub(crate) family: Family,
    /// The destination of the quoted echo request.
    pub(crate) destination: IpAddr,
    pub(crate) ident: u16,
    pub(crate) seq: u16,
}

/// Parses what an IPv4 raw ICMP socket received: an IP header and an ICMP message. Returns
/// `None` for anything that is not an echo reply or an error quoting an echo request, and for
/// truncated messages.
pub(crate) fn parse_ipv4(datagram: &[u8]) -> Option<Message<'_>> {
    let ip = Ipv4Packet::new(datagram)?;
    let header_len = usize::from(ip.get_header_length()) * 4;
    if ip.get_next_level_protocol() != IpNextHeaderProtocols::Icmp || header_len < 20 {
        return None;
    }
    let message = datagram.get(header_len..)?;
    let icmp = IcmpPacket::new(message)?;
    match icmp.get_icmp_type().0 {
        icmpv4_type::ECHO_REPLY => {
            let reply = EchoReplyPacket::new(message)?;
            if message.len() < ECHO_HEADER_LEN {
                return None;
            }
            Some(Message::Reply(EchoReply {
                ident: reply.get_identifier(),
                seq: reply.get_sequence_number(),
                ttl: Some(ip.get_ttl()),
                len: message.len(),
                payload: &message[ECHO_HEADER_LEN..],
                checksum_ok: icmp::checksum(&icmp) == icmp.get_checksum(),
            }))
        }
        kind @ (icmpv4_type::DESTINATION_UNREACHABLE
        | icmpv4_type::TIME_EXCEEDED
        | icmpv4_type::PARAMETER_PROBLEM) => {
            let code = icmp.get_icmp_code().0;
            let (kind, mtu) = match kind {
                icmpv4_type::DESTINATION_UNREACHABLE if code == 4 => {
                    // "Fragmentation needed" carries the next-hop MTU in bytes 6..8 (RFC 1191);
                    // a router from before it sends zero there.
                    let mtu = u16::from_be_bytes([message[6], message[7]]);
                    (IcmpErrorKind::FragmentationNeeded, (mtu != 0).then_some(u32::from(mtu)))
                }
                icmpv4_type::DESTINATION_UNREACHABLE => (IcmpErrorKind::DestinationUnreachable, None),
                icmpv4_type::TIME_EXCEEDED => (IcmpErrorKind::TimeExceeded, None),
                _ => (IcmpErrorKind::ParameterProblem, None),
            };
            let quoted = message.get(ERROR_HEADER_LEN..)?;
            let inner = Ipv4Packet::new(quoted)?;
            let inner_header_len = usize::from(inner.get_header_length()) * 4;
            if inner.get_next_level_protocol() != IpNextHeaderProtocols::Icmp || inner_header_len < 20 {
                return None;
            }
            let echo = quoted.get(inner_header_len..inner_header_len + ECHO_HEADER_LEN)?;
            if echo[0] != IcmpTypes::EchoRequest.0 {
                return None;
            }
            let request = echo_request_v4::EchoRequestPacket::new(echo)?;
            Some(Message::Error(QuotedError {
                kind,
                code,
                mtu,
                family: Family::V4,
                destination: IpAddr::V4(inner.get_destination()),
                ident: request.get_identifier(),
                seq: request.get_sequence_number(),
            }))
        }
        _ => None,
    }
}

/// Parses what an ICMPv6 raw socket received: the ICMPv6 message alone. Returns `None` for
/// anything that is not an echo reply or an error quoting an echo request.
pub(crate) fn parse_icmpv6(message: &[u8]) -> Option<Message<'_>> {
    let icmp = Icmpv6Packet::new(message)?;
    let code = icmp.get_icmpv6_code().0;
    let kind = match icmp.get_icmpv6_type().0 {
        icmpv6_type::ECHO_REPLY => {
            if message.len() < ECHO_HEADER_LEN {
                return None;
            }
            return Some(Message::Reply(EchoReply {
                ident: u16::from_be_bytes([message[4], message[5]]),
                seq: u16::from_be_bytes([message[6], message[7]]),
                ttl: None,
                len: message.len(),
                payload: &message[ECHO_HEADER_LEN..],
                checksum_ok: true,
            }));
        }
        icmpv6_type::DESTINATION_UNREACHABLE => IcmpErrorKind::DestinationUnreachable,
        icmpv6_type::PACKET_TOO_BIG => IcmpErrorKind::PacketTooBig,
        icmpv6_type::TIME_EXCEEDED => IcmpErrorKind::TimeExceeded,
        icmpv6_type::PARAMETER_PROBLEM => IcmpErrorKind::ParameterProblem,
        _ => return None,
    };
    let rest = message.get(4..ERROR_HEADER_LEN)?;
    let mtu = (kind == IcmpErrorKind::PacketTooBig)
        .then(|| u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]));
    let quoted = message.get(ERROR_HEADER_LEN..)?;
    let inner = Ipv6Packet::new(quoted)?;
    // An echo request we sent has no extension headers, so the echo follows the fixed header.
    if inner.get_next_header() != IpNextHeaderProtocols::Icmpv6 {
        return None;
    }
    let echo = quoted.get(IPV6_HEADER_LEN..IPV6_HEADER_LEN + ECHO_HEADER_LEN)?;
    if echo[0] != Icmpv6Types::EchoRequest.0 {
        return None;
    }
    let request = echo_request_v6::EchoRequestPacket::new(echo)?;
    Some(Message::Error(QuotedError {
        kind,
        code,
        mtu,
        family: Family::V6,
        destination: IpAddr::V6(inner.get_destination()),
        ident: request.get_identifier(),
        seq: request.get_sequence_number(),
    }))
}

/// Describes an ICMP error the way iputils prints it ("Time to live exceeded",
/// "Destination Host Unreachable", ...).
pub(crate) fn describe(
    f: &mut fmt::Formatter<'_>,
    family: Family,
    kind: IcmpErrorKind,
    code: u8,
    mtu: Option<u32>,
) -> fmt::Result {
    match (family, kind) {
        (Family::V4, IcmpErrorKind::DestinationUnreachable) => match code {
            0 => f.write_str("Destination Net Unreachable"),
            1 => f.write_str("Destination Host Unreachable"),
            2 => f.write_str("Destination Protocol Unreachable"),
            3 => f.write_str("Destination Port Unreachable"),
            5 => f.write_str("Source Route Failed"),
            6 => f.write_str("Destination Net Unknown"),
            7 => f.write_str("Destination Host Unknown"),
            8 => f.write_str("Source Host Isolated"),
            9 => f.write_str("Destination Net Prohibited"),
            10 => f.write_str("Destination Host Prohibited"),
            11 => f.write_str("Destination Net Unreachable for Type of Service"),
            12 => f.write_str("Destination Host Unreachable for Type of Service"),
            13 => f.write_str("Packet filtered"),
            14 => f.write_str("Precedence Violation"),
            15 => f.write_str("Precedence Cutoff"),
            _ => write!(f, "Dest Unreachable, Bad Code: {code}"),
        },
        (Family::V4, IcmpErrorKind::TimeExceeded) => match code {
            0 => f.write_str("Time to live exceeded"),
            1 => f.write_str("Frag reassembly time exceeded"),
            _ => write!(f, "Time exceeded, Bad Code: {code}"),
        },
        (Family::V6, IcmpErrorKind::DestinationUnreachable) => match code {
            0 => f.write_str("Destination unreachable: No route"),
            1 => f.write_str("Destination unreachable: Administratively prohibited"),
            2 => f.write_str("Destination unreachable: Beyond scope of source address"),
            3 => f.write_str("Destination unreachable: Address unreachable"),
            4 => f.write_str("Destination unreachable: Port unreachable"),
            _ => write!(f, "Destination unreachable: Unknown code {code}"),
        },
        (Family::V6, IcmpErrorKind::TimeExceeded) => match code {
            0 => f.write_str("Time exceeded: Hop limit"),
            1 => f.write_str("Time exceeded: Defragmentation failure"),
            _ => write!(f, "Time exceeded: code {code}"),
        },
        (_, IcmpErrorKind::PacketTooBig) => write!(f, "Packet too big: mtu={}", mtu.unwrap_or(0)),
        (_, IcmpErrorKind::FragmentationNeeded) => {
            write!(f, "Frag needed and DF set (mtu = {})", mtu.unwrap_or(0))
        }
        (_, IcmpErrorKind::ParameterProblem) => write!(f, "Parameter problem: code {code}"),
    }
}

#[cfg(test)]
mod tests;
