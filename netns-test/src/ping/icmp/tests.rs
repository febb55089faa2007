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
    let expected =
        EchoReply { ident: 0xbeef, seq: 0x0102, ttl: None, len: 16, payload: &PAYLOAD, checksum_ok: true };
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
    let Some(Message::Error(error)) = parse_icmpv6(&unreachable) else { panic!("not parsed as an error") };
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
