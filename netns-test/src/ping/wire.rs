//! The wire format: ICMP and ICMPv6 echo messages, and the error messages that quote them.
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
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const PAYLOAD: [u8; 8] = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07];

    /// Echo request, identifier 0x1234, sequence 1, payload 0..8, checksum 0xd9ba.
    const REQUEST_V4: [u8; 16] =
        [0x08, 0x00, 0xd9, 0xba, 0x12, 0x34, 0x00, 0x01, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07];

    /// The reply to it from 1.1.1.1 to 1.1.1.2, TTL 64, as a raw IPv4 socket receives it.
    const REPLY_V4: [u8; 36] = [
        0x45, 0x00, 0x00, 0x24, 0xab, 0xcd, 0x00, 0x00, 0x40, 0x01, 0xcb, 0x07, 0x01, 0x01, 0x01, 0x01, 0x01,
        0x01, 0x01, 0x02, // IPv4 header
        0x00, 0x00, 0xe1, 0xba, 0x12, 0x34, 0x00, 0x01, // echo reply header
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, // payload
    ];

    /// Time exceeded from router 10.0.1.1 to 10.0.1.2, quoting an echo request (identifier
    /// 0x1234, sequence 3) from 10.0.1.2 to 10.0.2.2 sent with TTL 1.
    const TIME_EXCEEDED_V4: [u8; 64] = [
        0x45, 0xc0, 0x00, 0x40, 0x11, 0x22, 0x00, 0x00, 0x40, 0x01, 0x52, 0xd9, 0x0a, 0x00, 0x01, 0x01, 0x0a,
        0x00, 0x01, 0x02, // outer IPv4 header
        0x0b, 0x00, 0xf4, 0xff, 0x00, 0x00, 0x00, 0x00, // time exceeded, code 0
        0x45, 0x00, 0x00, 0x24, 0x00, 0x01, 0x40, 0x00, 0x01, 0x01, 0x62, 0xd5, 0x0a, 0x00, 0x01, 0x02, 0x0a,
        0x00, 0x02, 0x02, // quoted IPv4 header
        0x08, 0x00, 0xd9, 0xb8, 0x12, 0x34, 0x00, 0x03, // quoted echo request
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
    ];

    /// ICMPv6 echo request, identifier 0xbeef, sequence 0x0102, checksum left to the kernel.
    const REQUEST_V6: [u8; 16] =
        [0x80, 0x00, 0x00, 0x00, 0xbe, 0xef, 0x01, 0x02, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07];

    /// ICMPv6 echo reply as a raw ICMPv6 socket receives it (checksum as the sender set it).
    const REPLY_V6: [u8; 16] =
        [0x81, 0x00, 0x6b, 0x1d, 0xbe, 0xef, 0x01, 0x02, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07];

    fn error_v6(kind: u8, code: u8, rest: [u8; 4], next_header: u8, echo_type: u8) -> Vec<u8> {
        let mut message = vec![kind, code, 0x12, 0x34];
        message.extend_from_slice(&rest);
        // The quoted IPv6 header: version 6, payload length 16, next header, hop limit 1,
        // fd00:1::2 -> fd00:2::2.
        message.extend_from_slice(&[0x60, 0x00, 0x00, 0x00, 0x00, 0x10, next_header, 0x01]);
        message.extend_from_slice(&[0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        message.extend_from_slice(&[0xfd, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        message.extend_from_slice(&[echo_type, 0x00, 0x55, 0xaa, 0xbe, 0xef, 0x00, 0x07]);
        message.extend_from_slice(&PAYLOAD);
        message
    }

    #[test]
    fn emits_an_ipv4_echo_request_with_its_checksum() {
        let request = EchoRequest { ident: 0x1234, seq: 1, payload: &PAYLOAD };
        assert_eq!(request.buffer_len(), 16);
        let mut buffer = [0xffu8; 16];
        request.emit(Family::V4, &mut buffer);
        assert_eq!(buffer, REQUEST_V4);
    }

    #[test]
    fn emits_an_ipv6_echo_request_without_checksum() {
        let request = EchoRequest { ident: 0xbeef, seq: 0x0102, payload: &PAYLOAD };
        let mut buffer = [0xffu8; 16];
        request.emit(Family::V6, &mut buffer);
        assert_eq!(buffer, REQUEST_V6);
    }

    #[test]
    fn patching_the_sequence_number_matches_a_fresh_emit() {
        let payload: Vec<u8> = (0..56).collect();
        let mut patched = vec![0u8; 64];
        EchoRequest { ident: 0x1234, seq: 0, payload: &payload }.emit(Family::V4, &mut patched);
        let mut fresh = vec![0u8; 64];
        // Every sequence number, in an order that changes many bits at once.
        for step in 0..=u16::MAX {
            let seq = step.wrapping_mul(40_503);
            set_seq(Family::V4, &mut patched, seq);
            EchoRequest { ident: 0x1234, seq, payload: &payload }.emit(Family::V4, &mut fresh);
            assert_eq!(patched, fresh, "sequence number {seq}");
        }
        let mut v6 = REQUEST_V6;
        set_seq(Family::V6, &mut v6, 0x0304);
        assert_eq!(&v6[4..8], &[0xbe, 0xef, 0x03, 0x04]);
    }

    #[test]
    fn parses_an_ipv4_echo_reply() {
        let expected =
            EchoReply { ident: 0x1234, seq: 1, ttl: Some(64), len: 16, payload: &PAYLOAD, checksum_ok: true };
        assert_eq!(parse_ipv4(&REPLY_V4), Some(Message::Reply(expected)));
    }

    #[test]
    fn flags_an_ipv4_echo_reply_with_a_bad_checksum() {
        let mut corrupted = REPLY_V4;
        corrupted[30] ^= 0x40;
        let Some(Message::Reply(reply)) = parse_ipv4(&corrupted) else { panic!("not parsed as a reply") };
        assert!(!reply.checksum_ok);
    }

    #[test]
    fn parses_an_ipv4_time_exceeded_quoting_an_echo_request() {
        let expected = QuotedError {
            kind: IcmpErrorKind::TimeExceeded,
            code: 0,
            mtu: None,
            family: Family::V4,
            destination: IpAddr::V4(Ipv4Addr::new(10, 0, 2, 2)),
            ident: 0x1234,
            seq: 3,
        };
        assert_eq!(parse_ipv4(&TIME_EXCEEDED_V4), Some(Message::Error(expected)));
    }

    #[test]
    fn parses_an_ipv4_fragmentation_needed_with_its_mtu() {
        let mut message = TIME_EXCEEDED_V4;
        message[20] = 3; // destination unreachable
        message[21] = 4; // fragmentation needed
        message[26..28].copy_from_slice(&1400u16.to_be_bytes());
        let Some(Message::Error(error)) = parse_ipv4(&message) else { panic!("not parsed as an error") };
        assert_eq!((error.kind, error.code, error.mtu), (IcmpErrorKind::FragmentationNeeded, 4, Some(1400)));
        // A router from before RFC 1191 leaves the MTU out.
        message[26..28].copy_from_slice(&[0, 0]);
        let Some(Message::Error(error)) = parse_ipv4(&message) else { panic!("not parsed as an error") };
        assert_eq!((error.kind, error.mtu), (IcmpErrorKind::FragmentationNeeded, None));
        // Other unreachable codes stay what they are, without an MTU.
        message[21] = 1;
        message[26..28].copy_from_slice(&1400u16.to_be_bytes());
        let Some(Message::Error(error)) = parse_ipv4(&message) else { panic!("not parsed as an error") };
        assert_eq!((error.kind, error.code, error.mtu), (IcmpErrorKind::DestinationUnreachable, 1, None));
    }

    #[test]
    fn ignores_ipv4_messages_that_are_not_for_a_pinger() {
        // Our own echo request, seen when pinging a local address.
        let mut request = REPLY_V4;
        request[20] = 8;
        assert_eq!(parse_ipv4(&request), None);
        // An error quoting something other than an echo request.
        let mut quoting_a_reply = TIME_EXCEEDED_V4;
        quoting_a_reply[48] = 0;
        assert_eq!(parse_ipv4(&quoting_a_reply), None);
        // UDP, and truncated datagrams.
        let mut udp = REPLY_V4;
        udp[9] = 17;
        assert_eq!(parse_ipv4(&udp), None);
        assert_eq!(parse_ipv4(&REPLY_V4[..24]), None);
        assert_eq!(parse_ipv4(&TIME_EXCEEDED_V4[..50]), None);
    }

    #[test]
    fn parses_an_ipv6_echo_reply() {
        let expected = EchoReply {
            ident: 0xbeef,
            seq: 0x0102,
            ttl: None,
            len: 16,
            payload: &PAYLOAD,
            checksum_ok: true,
        };
        assert_eq!(parse_icmpv6(&REPLY_V6), Some(Message::Reply(expected)));
    }

    #[test]
    fn parses_ipv6_errors_quoting_an_echo_request() {
        let destination = IpAddr::V6(Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 2));
        let time_exceeded = error_v6(3, 0, [0; 4], 58, 128);
        assert_eq!(
            parse_icmpv6(&time_exceeded),
            Some(Message::Error(QuotedError {
                kind: IcmpErrorKind::TimeExceeded,
                code: 0,
                mtu: None,
                family: Family::V6,
                destination,
                ident: 0xbeef,
                seq: 7,
            }))
        );
        let too_big = error_v6(2, 0, 1280u32.to_be_bytes(), 58, 128);
        let Some(Message::Error(error)) = parse_icmpv6(&too_big) else { panic!("not parsed as an error") };
        assert_eq!((error.kind, error.mtu), (IcmpErrorKind::PacketTooBig, Some(1280)));
        let unreachable = error_v6(1, 3, [0; 4], 58, 128);
        let Some(Message::Error(error)) = parse_icmpv6(&unreachable) else {
            panic!("not parsed as an error")
        };
        assert_eq!((error.kind, error.code), (IcmpErrorKind::DestinationUnreachable, 3));
    }

    #[test]
    fn ignores_ipv6_messages_that_are_not_for_a_pinger() {
        // Neighbour solicitation, an echo request, an error quoting UDP or a reply, truncation.
        assert_eq!(parse_icmpv6(&[135, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(parse_icmpv6(&REQUEST_V6), None);
        assert_eq!(parse_icmpv6(&error_v6(3, 0, [0; 4], 17, 128)), None);
        assert_eq!(parse_icmpv6(&error_v6(3, 0, [0; 4], 58, 129)), None);
        assert_eq!(parse_icmpv6(&error_v6(3, 0, [0; 4], 58, 128)[..50]), None);
        assert_eq!(parse_icmpv6(&REPLY_V6[..6]), None);
    }

    #[test]
    fn describes_errors_like_iputils() {
        struct Describe(Family, IcmpErrorKind, u8, Option<u32>);
        impl fmt::Display for Describe {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                describe(f, self.0, self.1, self.2, self.3)
            }
        }
        let text = |family, kind, code, mtu| Describe(family, kind, code, mtu).to_string();
        assert_eq!(text(Family::V4, IcmpErrorKind::TimeExceeded, 0, None), "Time to live exceeded");
        assert_eq!(
            text(Family::V4, IcmpErrorKind::DestinationUnreachable, 1, None),
            "Destination Host Unreachable"
        );
        assert_eq!(text(Family::V6, IcmpErrorKind::TimeExceeded, 0, None), "Time exceeded: Hop limit");
        assert_eq!(text(Family::V6, IcmpErrorKind::PacketTooBig, 0, Some(1280)), "Packet too big: mtu=1280");
        assert_eq!(
            text(Family::V4, IcmpErrorKind::FragmentationNeeded, 4, Some(1400)),
            "Frag needed and DF set (mtu = 1400)"
        );
    }
}
