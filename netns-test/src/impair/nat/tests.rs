//! The translator against literal frames and frames built here, with every checksum checked
//! by recomputing it with `pnet_packet` (an implementation independent of ours).
//!
//! The literal frames were made with a short Python script that computes checksums from
//! scratch (RFC 1071), a third implementation.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use pnet_packet::Packet;
use pnet_packet::icmp::IcmpPacket;
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::tcp::TcpPacket;
use pnet_packet::udp::UdpPacket;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use super::Dependence::{AddressAndPortDependent as Apd, AddressDependent as Ad, EndpointIndependent as Ei};
use super::*;

const OUTSIDE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
const S1: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const S2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// A router on the outside path, which sends ICMP errors.
const HOP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 9);
const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const GATEWAY_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

const SECOND: u64 = 1_000_000_000;

use Direction::{Inbound as In, Outbound as Out};

fn ep(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

fn config(mapping: Dependence, filtering: Dependence) -> NatConfig {
    NatConfig { seed: 1, ..NatConfig::new(OUTSIDE, mapping, filtering) }
}

fn translator(mapping: Dependence, filtering: Dependence) -> Translator {
    Translator::new(config(mapping, filtering))
}

// ---- Building frames (checksums by pnet_packet) ----

/// An IPv4 packet carrying `transport`, with flags and fragment offset `flags_frag`.
fn ipv4(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    transport: &[u8],
    ident: u16,
    flags_frag: u16,
) -> Vec<u8> {
    let mut bytes = vec![0u8; 20];
    bytes[0] = 0x45;
    bytes[2..4].copy_from_slice(&u16::try_from(20 + transport.len()).expect("small").to_be_bytes());
    bytes[4..6].copy_from_slice(&ident.to_be_bytes());
    bytes[6..8].copy_from_slice(&flags_frag.to_be_bytes());
    bytes[8] = 64;
    bytes[9] = protocol;
    bytes[12..16].copy_from_slice(&src.octets());
    bytes[16..20].copy_from_slice(&dst.octets());
    let checksum = pnet_packet::ipv4::checksum(&Ipv4Packet::new(&bytes).expect("a header"));
    bytes[10..12].copy_from_slice(&checksum.to_be_bytes());
    bytes.extend_from_slice(transport);
    bytes
}

fn udp_header(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&src.port().to_be_bytes());
    bytes.extend_from_slice(&dst.port().to_be_bytes());
    bytes.extend_from_slice(&u16::try_from(8 + payload.len()).expect("small").to_be_bytes());
    bytes.extend_from_slice(&[0, 0]);
    bytes.extend_from_slice(payload);
    let checksum = pnet_packet::udp::ipv4_checksum(&UdpPacket::new(&bytes).expect("udp"), src.ip(), dst.ip());
    bytes[6..8].copy_from_slice(&(if checksum == 0 { 0xffff } else { checksum }).to_be_bytes());
    bytes
}

fn tcp_header(src: SocketAddrV4, dst: SocketAddrV4, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0u8; 20];
    bytes[0..2].copy_from_slice(&src.port().to_be_bytes());
    bytes[2..4].copy_from_slice(&dst.port().to_be_bytes());
    bytes[4..8].copy_from_slice(&1000u32.to_be_bytes());
    bytes[12] = 0x50;
    bytes[13] = flags;
    bytes[14..16].copy_from_slice(&64240u16.to_be_bytes());
    bytes.extend_from_slice(payload);
    let checksum = pnet_packet::tcp::ipv4_checksum(&TcpPacket::new(&bytes).expect("tcp"), src.ip(), dst.ip());
    bytes[16..18].copy_from_slice(&checksum.to_be_bytes());
    bytes
}

fn icmp_message(kind: u8, code: u8, rest: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![kind, code, 0, 0];
    bytes.extend_from_slice(&rest);
    bytes.extend_from_slice(payload);
    let checksum = pnet_packet::icmp::checksum(&IcmpPacket::new(&bytes).expect("icmp"));
    bytes[2..4].copy_from_slice(&checksum.to_be_bytes());
    bytes
}

/// An Ethernet frame from the router to the gateway (outbound) or back (inbound).
fn frame(direction: Direction, packet: &[u8]) -> Vec<u8> {
    let (src, dst) = match direction {
        Out => (ROUTER_MAC, GATEWAY_MAC),
        In => (GATEWAY_MAC, ROUTER_MAC),
    };
    let mut bytes = dst.to_vec();
    bytes.extend_from_slice(&src);
    bytes.extend_from_slice(&[0x08, 0x00]);
    bytes.extend_from_slice(packet);
    bytes
}

fn udp_packet(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    ipv4(*src.ip(), *dst.ip(), 17, &udp_header(src, dst, payload), 0x1234, 0x4000)
}

fn udp(direction: Direction, src: SocketAddrV4, dst: SocketAddrV4) -> Vec<u8> {
    frame(direction, &udp_packet(src, dst, b"data"))
}

fn tcp_packet(src: SocketAddrV4, dst: SocketAddrV4, flags: u8) -> Vec<u8> {
    ipv4(*src.ip(), *dst.ip(), 6, &tcp_header(src, dst, flags, b""), 0x2345, 0x4000)
}

fn tcp(direction: Direction, src: SocketAddrV4, dst: SocketAddrV4, flags: u8) -> Vec<u8> {
    frame(direction, &tcp_packet(src, dst, flags))
}

fn echo_packet(src: Ipv4Addr, dst: Ipv4Addr, kind: u8, id: u16) -> Vec<u8> {
    let mut rest = [0u8; 4];
    rest[..2].copy_from_slice(&id.to_be_bytes());
    rest[3] = 1;
    ipv4(src, dst, 1, &icmp_message(kind, 0, rest, b"abcdefgh"), 0x3456, 0)
}

fn echo(direction: Direction, src: Ipv4Addr, dst: Ipv4Addr, kind: u8, id: u16) -> Vec<u8> {
    frame(direction, &echo_packet(src, dst, kind, id))
}

/// An ICMP error from `src` to `dst` embedding `offending` (an IPv4 packet; the first
/// `embed` bytes of it).
fn icmp_error(
    direction: Direction,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    kind: u8,
    code: u8,
    offending: &[u8],
    embed: usize,
) -> Vec<u8> {
    let rest = if (kind, code) == (3, 4) { [0, 0, 0x05, 0x78] } else { [0; 4] };
    let message = icmp_message(kind, code, rest, &offending[..embed.min(offending.len())]);
    frame(direction, &ipv4(src, dst, 1, &message, 0x0bad, 0))
}

// ---- Reading frames ----

fn packet(frame: &[u8]) -> Ipv4Packet<'_> {
    Ipv4Packet::new(&frame[14..]).expect("an IPv4 packet")
}

fn ports(transport: &[u8]) -> (u16, u16) {
    (u16::from_be_bytes([transport[0], transport[1]]), u16::from_be_bytes([transport[2], transport[3]]))
}

fn src_of(frame: &[u8]) -> SocketAddrV4 {
    let ip = packet(frame);
    let port = if ip.get_next_level_protocol().0 == 1 { echo_id(frame) } else { ports(ip.payload()).0 };
    ep(ip.get_source(), port)
}

fn dst_of(frame: &[u8]) -> SocketAddrV4 {
    let ip = packet(frame);
    let port = if ip.get_next_level_protocol().0 == 1 { echo_id(frame) } else { ports(ip.payload()).1 };
    ep(ip.get_destination(), port)
}

fn echo_id(frame: &[u8]) -> u16 {
    let icmp = &frame[34..];
    u16::from_be_bytes([icmp[4], icmp[5]])
}

/// The packet embedded in the ICMP error `frame`.
fn embedded_of(frame: &[u8]) -> &[u8] {
    &frame[14 + 20 + 8..]
}

/// Whether a stored checksum verifies: equal to the recomputed one, or its other one's
/// complement spelling (0x0000 and 0xffff are the same number).
fn verifies(stored: u16, computed: u16) -> bool {
    stored == computed || (stored, computed) == (0xffff, 0) || (stored, computed) == (0, 0xffff)
}

/// Checks every checksum of an IPv4 frame by recomputing it: the IPv4 header, the transport
/// checksum (a UDP checksum of 0 is "none"), and for an ICMP error the embedded IPv4 header.
/// A fragment's transport checksum covers the whole datagram: only its header is checked.
fn assert_checksums(frame: &[u8]) {
    let ip = packet(frame);
    let stored = ip.get_checksum();
    assert_eq!(stored, pnet_packet::ipv4::checksum(&ip), "IPv4 header checksum of {frame:02x?}");
    if ip.get_flags() & 1 != 0 || ip.get_fragment_offset() != 0 {
        return;
    }
    let (src, dst) = (ip.get_source(), ip.get_destination());
    let payload = ip.payload();
    match ip.get_next_level_protocol().0 {
        17 => {
            let udp = UdpPacket::new(payload).expect("udp");
            if udp.get_checksum() != 0 {
                let computed = pnet_packet::udp::ipv4_checksum(&udp, &src, &dst);
                assert!(
                    udp.get_checksum() != 0 && verifies(udp.get_checksum(), computed),
                    "UDP checksum of {frame:02x?}"
                );
            }
        }
        6 => {
            let tcp = TcpPacket::new(payload).expect("tcp");
            let computed = pnet_packet::tcp::ipv4_checksum(&tcp, &src, &dst);
            assert!(verifies(tcp.get_checksum(), computed), "TCP checksum of {frame:02x?}");
        }
        1 => {
            let icmp = IcmpPacket::new(payload).expect("icmp");
            assert!(
                verifies(icmp.get_checksum(), pnet_packet::icmp::checksum(&icmp)),
                "ICMP checksum of {frame:02x?}"
            );
            if matches!(payload[0], 3 | 11 | 12) {
                let inner = Ipv4Packet::new(&payload[8..]).expect("an embedded header");
                assert_eq!(
                    inner.get_checksum(),
                    pnet_packet::ipv4::checksum(&inner),
                    "embedded IPv4 checksum"
                );
            }
        }
        _ => {}
    }
}

/// Runs `frame` through `nat` at `now`, checking the checksums of whatever it rewrote.
fn run(nat: &mut Translator, direction: Direction, mut frame: Vec<u8>, now: u64) -> (Verdict, Vec<u8>) {
    let verdict = nat.process(&mut frame, direction, L4Checksum::Complete, now);
    if matches!(verdict, Verdict::Translated | Verdict::Hairpin) {
        assert_checksums(&frame);
    }
    (verdict, frame)
}

/// The outside endpoint that a UDP packet from `inside` to `remote` is given.
fn mapped(nat: &mut Translator, inside: SocketAddrV4, remote: SocketAddrV4, now: u64) -> SocketAddrV4 {
    let (verdict, out) = run(nat, Out, udp(Out, inside, remote), now);
    assert_eq!(verdict, Verdict::Translated, "{inside} -> {remote}");
    assert_eq!(dst_of(&out), remote);
    src_of(&out)
}

/// Whether a UDP packet from `remote` to `outside` is let in (to whom).
fn inbound(
    nat: &mut Translator,
    remote: SocketAddrV4,
    outside: SocketAddrV4,
    now: u64,
) -> Option<SocketAddrV4> {
    match run(nat, In, udp(In, remote, outside), now) {
        (Verdict::Translated, frame) => {
            assert_eq!(src_of(&frame), remote);
            Some(dst_of(&frame))
        }
        (Verdict::Drop(DropReason::Filtered), _) => None,
        (verdict, _) => panic!("{remote} -> {outside}: {verdict:?}"),
    }
}

// ---- Literal frames ----

/// Outbound UDP 10.0.0.2:5000 → 198.51.100.1:3478, "ping".
const UDP_OUT: [u8; 46] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45, 0x00, 0x00,
    0x20, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0xf4, 0x62, 0x0a, 0x00, 0x00, 0x02, 0xc6, 0x33, 0x64, 0x01,
    0x13, 0x88, 0x0d, 0x96, 0x00, 0x0c, 0xcb, 0xb0, 0x70, 0x69, 0x6e, 0x67,
];

/// The same, from 203.0.113.1:40000.
const UDP_OUT_TRANSLATED: [u8; 46] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45, 0x00, 0x00,
    0x20, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0xc2, 0x62, 0xcb, 0x00, 0x71, 0x01, 0xc6, 0x33, 0x64, 0x01,
    0x9c, 0x40, 0x0d, 0x96, 0x00, 0x0c, 0x10, 0xf8, 0x70, 0x69, 0x6e, 0x67,
];

/// The reply 198.51.100.1:3478 → 203.0.113.1:40000, "pong".
const UDP_IN: [u8; 46] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0x45, 0x00, 0x00,
    0x20, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0xc2, 0x62, 0xc6, 0x33, 0x64, 0x01, 0xcb, 0x00, 0x71, 0x01,
    0x0d, 0x96, 0x9c, 0x40, 0x00, 0x0c, 0x10, 0xf2, 0x70, 0x6f, 0x6e, 0x67,
];

/// The reply, to 10.0.0.2:5000.
const UDP_IN_TRANSLATED: [u8; 46] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0x45, 0x00, 0x00,
    0x20, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0xf4, 0x62, 0xc6, 0x33, 0x64, 0x01, 0x0a, 0x00, 0x00, 0x02,
    0x0d, 0x96, 0x13, 0x88, 0x00, 0x0c, 0xcb, 0xaa, 0x70, 0x6f, 0x6e, 0x67,
];

/// A SYN 10.0.0.2:5000 → 198.51.100.1:80.
const TCP_SYN_OUT: [u8; 54] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45, 0x00, 0x00,
    0x28, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0xf4, 0x65, 0x0a, 0x00, 0x00, 0x02, 0xc6, 0x33, 0x64, 0x01,
    0x13, 0x88, 0x00, 0x50, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x00, 0x50, 0x02, 0xfa, 0xf0, 0x68,
    0xfb, 0x00, 0x00,
];

/// The SYN from 203.0.113.1:40000.
const TCP_SYN_OUT_TRANSLATED: [u8; 54] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45, 0x00, 0x00,
    0x28, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0xc2, 0x65, 0xcb, 0x00, 0x71, 0x01, 0xc6, 0x33, 0x64, 0x01,
    0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x00, 0x50, 0x02, 0xfa, 0xf0, 0xae,
    0x42, 0x00, 0x00,
];

/// Fragmentation needed (next-hop MTU 1400) from 192.0.2.9 to 203.0.113.1, embedding
/// `UDP_OUT_TRANSLATED`.
const FRAG_NEEDED_IN: [u8; 74] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0x45, 0x00, 0x00,
    0x3c, 0x0b, 0xad, 0x40, 0x00, 0x3f, 0x01, 0x32, 0x09, 0xc0, 0x00, 0x02, 0x09, 0xcb, 0x00, 0x71, 0x01,
    0x03, 0x04, 0x5d, 0xd8, 0x00, 0x00, 0x05, 0x78, 0x45, 0x00, 0x00, 0x20, 0x12, 0x34, 0x40, 0x00, 0x40,
    0x11, 0xc2, 0x62, 0xcb, 0x00, 0x71, 0x01, 0xc6, 0x33, 0x64, 0x01, 0x9c, 0x40, 0x0d, 0x96, 0x00, 0x0c,
    0x10, 0xf8, 0x70, 0x69, 0x6e, 0x67,
];

/// The same error to 10.0.0.2, embedding `UDP_OUT`.
const FRAG_NEEDED_IN_TRANSLATED: [u8; 74] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0x45, 0x00, 0x00,
    0x3c, 0x0b, 0xad, 0x40, 0x00, 0x3f, 0x01, 0x64, 0x09, 0xc0, 0x00, 0x02, 0x09, 0x0a, 0x00, 0x00, 0x02,
    0x03, 0x04, 0x2b, 0xd8, 0x00, 0x00, 0x05, 0x78, 0x45, 0x00, 0x00, 0x20, 0x12, 0x34, 0x40, 0x00, 0x40,
    0x11, 0xf4, 0x62, 0x0a, 0x00, 0x00, 0x02, 0xc6, 0x33, 0x64, 0x01, 0x13, 0x88, 0x0d, 0x96, 0x00, 0x0c,
    0xcb, 0xb0, 0x70, 0x69, 0x6e, 0x67,
];

/// The literals' translator: one outside port, 40000.
fn literal_nat() -> Translator {
    Translator::new(NatConfig { ports: PortRange::new(40000, 40000).expect("a range"), ..config(Ei, Apd) })
}

#[test]
fn the_literals_are_valid_frames() {
    for literal in [
        &UDP_OUT[..],
        &UDP_OUT_TRANSLATED,
        &UDP_IN,
        &UDP_IN_TRANSLATED,
        &TCP_SYN_OUT,
        &TCP_SYN_OUT_TRANSLATED,
    ] {
        assert_checksums(literal);
    }
    assert_checksums(&FRAG_NEEDED_IN);
    assert_checksums(&FRAG_NEEDED_IN_TRANSLATED);
    assert_eq!(embedded_of(&FRAG_NEEDED_IN), &UDP_OUT_TRANSLATED[14..]);
    assert_eq!(embedded_of(&FRAG_NEEDED_IN_TRANSLATED), &UDP_OUT[14..]);
}

#[test]
fn literal_udp_is_translated_out_and_back() {
    let mut nat = literal_nat();
    let mut frame = UDP_OUT.to_vec();
    assert_eq!(nat.process(&mut frame, Out, L4Checksum::Complete, 0), Verdict::Translated);
    assert_eq!(frame, UDP_OUT_TRANSLATED);
    let mut frame = UDP_IN.to_vec();
    assert_eq!(nat.process(&mut frame, In, L4Checksum::Complete, 1), Verdict::Translated);
    assert_eq!(frame, UDP_IN_TRANSLATED);
}

#[test]
fn literal_tcp_syn_is_translated() {
    let mut nat = literal_nat();
    let mut frame = TCP_SYN_OUT.to_vec();
    assert_eq!(nat.process(&mut frame, Out, L4Checksum::Complete, 0), Verdict::Translated);
    assert_eq!(frame, TCP_SYN_OUT_TRANSLATED);
}

#[test]
fn literal_fragmentation_needed_reaches_the_inside_sender() {
    let mut nat = literal_nat();
    let mut frame = UDP_OUT.to_vec();
    assert_eq!(nat.process(&mut frame, Out, L4Checksum::Complete, 0), Verdict::Translated);
    let mut error = FRAG_NEEDED_IN.to_vec();
    assert_eq!(nat.process(&mut error, In, L4Checksum::Complete, 1), Verdict::Translated);
    assert_eq!(error, FRAG_NEEDED_IN_TRANSLATED);
}

// ---- RFC 4787 behaviour, classified the RFC 5780 way ----

/// The mapping behaviour, seen from inside (RFC 5780 section 4.3): the outside endpoints of
/// one inside endpoint towards S1:3478, S2:3478 and S2:3479.
fn classify_mapping(nat: &mut Translator) -> (Dependence, SocketAddrV4) {
    let inside = ep(A, 5000);
    let first = mapped(nat, inside, ep(S1, 3478), 0);
    let other_address = mapped(nat, inside, ep(S2, 3478), 1);
    let other_port = mapped(nat, inside, ep(S2, 3479), 2);
    // The first mapping is still the one used towards S1:3478.
    assert_eq!(mapped(nat, inside, ep(S1, 3478), 3), first);
    let behaviour = if first == other_address {
        Ei
    } else if other_address == other_port {
        Ad
    } else {
        Apd
    };
    (behaviour, first)
}

/// The filtering behaviour (RFC 5780 section 4.4): after one packet to S1:3478, whether
/// packets come in from S2:3479 (another address and port) and from S1:3479 (another port).
fn classify_filtering(nat: &mut Translator) -> Dependence {
    let inside = ep(A, 5000);
    let outside = mapped(nat, inside, ep(S1, 3478), 0);
    let filtering = if inbound(nat, ep(S2, 3479), outside, 1).is_some() {
        Ei
    } else if inbound(nat, ep(S1, 3479), outside, 2).is_some() {
        Ad
    } else {
        Apd
    };
    // The remote sent to is always let in, to the inside endpoint.
    assert_eq!(inbound(nat, ep(S1, 3478), outside, 3), Some(inside));
    filtering
}

#[test]
fn every_mapping_and_filtering_combination_classifies_as_configured() {
    for mapping in [Ei, Ad, Apd] {
        for filtering in [Ei, Ad, Apd] {
            for preservation in [true, false] {
                let config = NatConfig { port_preservation: preservation, ..config(mapping, filtering) };
                let what = format!("{mapping} mapping, {filtering} filtering, preservation {preservation}");
                let (seen_mapping, first) = classify_mapping(&mut Translator::new(config));
                assert_eq!(seen_mapping, mapping, "{what}");
                assert_eq!(*first.ip(), OUTSIDE, "{what}");
                assert_eq!(first.port() == 5000, preservation, "{what}: first outside port {}", first.port());
                assert_eq!(classify_filtering(&mut Translator::new(config)), filtering, "{what}");
                // TCP and ICMP echo cross every kind, both ways.
                let mut nat = Translator::new(config);
                let (verdict, syn) = run(&mut nat, Out, tcp(Out, ep(A, 5001), ep(S1, 80), 0x02), 0);
                assert_eq!(verdict, Verdict::Translated, "{what}");
                let syn_ack = tcp(In, ep(S1, 80), src_of(&syn), 0x12);
                let (verdict, answer) = run(&mut nat, In, syn_ack, 1);
                assert_eq!((verdict, dst_of(&answer)), (Verdict::Translated, ep(A, 5001)), "{what}");
                let (verdict, request) = run(&mut nat, Out, echo(Out, A, S1, 8, 77), 2);
                assert_eq!(verdict, Verdict::Translated, "{what}");
                let (verdict, reply) = run(&mut nat, In, echo(In, S1, OUTSIDE, 0, echo_id(&request)), 3);
                assert_eq!((verdict, dst_of(&reply)), (Verdict::Translated, ep(A, 77)), "{what}");
            }
        }
    }
}

#[test]
fn port_preserving_symmetric_nat_preserves_the_first_port_only() {
    // The combination nftables cannot express: address-and-port-dependent mapping that keeps
    // the inside port while it is free.
    let mut nat = translator(Apd, Apd);
    let ports: Vec<u16> = [ep(S1, 3478), ep(S1, 3479), ep(S2, 3478)]
        .iter()
        .map(|&remote| mapped(&mut nat, ep(A, 5000), remote, 0).port())
        .collect();
    assert_eq!(ports[0], 5000);
    assert!(ports[1] != 5000 && ports[2] != 5000 && ports[1] != ports[2], "{ports:?}");
}

// ---- Port allocation ----

#[test]
fn port_preservation_keeps_a_free_inside_port_and_allocates_otherwise() {
    let mut nat = translator(Ei, Ei);
    assert_eq!(mapped(&mut nat, ep(A, 5000), ep(S1, 3478), 0), ep(OUTSIDE, 5000));
    // B's port 5000 is taken by A's mapping.
    let b = mapped(&mut nat, ep(B, 5000), ep(S1, 3478), 0);
    assert!(b.port() != 5000 && PortRange::DEFAULT.contains(b.port()), "{b}");
    // A port outside the range is not kept: the router's own sockets live there.
    let high = mapped(&mut nat, ep(A, 62000), ep(S1, 3478), 0);
    assert!(PortRange::DEFAULT.contains(high.port()), "{high}");
    let low = mapped(&mut nat, ep(A, 53), ep(S1, 3478), 0);
    assert!(PortRange::DEFAULT.contains(low.port()), "{low}");

    let mut nat = Translator::new(NatConfig { port_preservation: false, ..config(Ei, Ei) });
    let ports: Vec<u16> = (0..20)
        .map(|i| mapped(&mut nat, ep(Ipv4Addr::new(10, 0, 1, i), 5000), ep(S1, 3478), 0).port())
        .collect();
    assert!(ports.iter().all(|&port| PortRange::DEFAULT.contains(port) && port != 5000), "{ports:?}");
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), ports.len(), "one outside port per mapping: {ports:?}");
}

/// The outside ports of 16 flows through a NAT without port preservation seeded with `seed`.
fn ports_with_seed(seed: u64) -> Vec<u16> {
    let mut nat = Translator::new(NatConfig { seed, port_preservation: false, ..config(Apd, Apd) });
    (0..16)
        .map(|i| mapped(&mut nat, ep(A, 5000 + i % 4), ep(S1, 3478 + i / 4), u64::from(i)).port())
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_ports_and_another_seed_others() {
    assert_eq!(ports_with_seed(7), ports_with_seed(7));
    let (seven, eight) = (ports_with_seed(7), ports_with_seed(8));
    let same = seven.iter().zip(&eight).filter(|(a, b)| a == b).count();
    assert!(same <= 1, "{seven:?} / {eight:?}");
    // Reconfiguring with a new seed restarts allocation from it.
    let mut nat = Translator::new(NatConfig { seed: 7, port_preservation: false, ..config(Apd, Apd) });
    nat.reconfigure(NatConfig { seed: 8, ..*nat.config() });
    assert_eq!(mapped(&mut nat, ep(A, 5000), ep(S1, 3478), 0).port(), eight[0]);
}

#[test]
fn ports_are_allocated_in_the_configured_range_until_it_runs_out() {
    let ports = PortRange::new(20000, 20009).expect("a range");
    let mut nat = Translator::new(NatConfig { ports, ..config(Apd, Apd) });
    for i in 0..10 {
        let outside = mapped(&mut nat, ep(A, 5000), ep(S1, 1000 + i), 0);
        assert!(ports.contains(outside.port()), "{outside}");
    }
    let (verdict, _) = run(&mut nat, Out, udp(Out, ep(A, 5000), ep(S1, 2000)), 0);
    assert_eq!(verdict, Verdict::Drop(DropReason::PortsExhausted));
    assert_eq!(nat.counters().exhausted, 1);
    assert_eq!(nat.mappings(0).len(), 10);
}

#[test]
fn port_ranges_are_validated() {
    assert_eq!(PortRange::new(2000, 1999), Err(NatConfigError::PortRange { first: 2000, last: 1999 }));
    assert_eq!(PortRange::new(0, 10), Err(NatConfigError::PortRange { first: 0, last: 10 }));
    assert_eq!(
        PortRange::new(2000, 1999).unwrap_err().to_string(),
        "the port range 2000-1999 is inverted (empty)"
    );
    assert!(PortRange::new(0, 10).unwrap_err().to_string().contains("port 0"));
    assert_eq!(PortRange::new(1, u16::MAX).map(|range| range.len()), Ok(65535));
    assert_eq!(PortRange::new(7, 7).map(|range| (range.first(), range.last(), range.len())), Ok((7, 7, 1)));
}

// ---- Hairpinning ----

#[test]
fn hairpin_translates_both_ends_and_turns_back() {
    let mut nat = translator(Ei, Ei);
    let b = mapped(&mut nat, ep(B, 6000), ep(S1, 3478), 0);
    let (verdict, turned) = run(&mut nat, Out, udp(Out, ep(A, 5000), b), 1);
    assert_eq!(verdict, Verdict::Hairpin);
    let a = ep(OUTSIDE, 5000);
    assert_eq!((src_of(&turned), dst_of(&turned)), (a, ep(B, 6000)));
    assert_eq!(
        (&turned[..6], &turned[6..12]),
        (&ROUTER_MAC[..], &GATEWAY_MAC[..]),
        "sent back to the router"
    );
    // B answers A's outside endpoint, which hairpins too.
    let (verdict, back) = run(&mut nat, Out, udp(Out, ep(B, 6000), a), 2);
    assert_eq!(verdict, Verdict::Hairpin);
    assert_eq!((src_of(&back), dst_of(&back)), (b, ep(A, 5000)));
    assert_eq!(nat.counters().hairpinned, 2);
    // TCP too, once B has a TCP mapping (protocols have ports of their own).
    assert_eq!(run(&mut nat, Out, tcp(Out, ep(A, 5001), b, 0x02), 3).0, Verdict::Bounce);
    let (_, syn) = run(&mut nat, Out, tcp(Out, ep(B, 6000), ep(S1, 80), 0x02), 4);
    assert_eq!(src_of(&syn), b);
    let (verdict, syn) = run(&mut nat, Out, tcp(Out, ep(A, 5001), b, 0x02), 5);
    assert_eq!((verdict, src_of(&syn), dst_of(&syn)), (Verdict::Hairpin, ep(OUTSIDE, 5001), ep(B, 6000)));
}

#[test]
fn hairpinned_packets_are_filtered_as_outside_ones() {
    let mut nat = translator(Ei, Apd);
    let b = mapped(&mut nat, ep(B, 6000), ep(S1, 3478), 0);
    let (verdict, _) = run(&mut nat, Out, udp(Out, ep(A, 5000), b), 1);
    assert_eq!(verdict, Verdict::Drop(DropReason::Filtered), "B never sent to A's outside endpoint");
    // Hole punching behind one NAT: B sends to A's outside endpoint, then A gets through.
    let (verdict, _) = run(&mut nat, Out, udp(Out, ep(B, 6000), ep(OUTSIDE, 5000)), 2);
    assert_eq!(verdict, Verdict::Hairpin);
    let (verdict, turned) = run(&mut nat, Out, udp(Out, ep(A, 5000), b), 3);
    assert_eq!((verdict, dst_of(&turned)), (Verdict::Hairpin, ep(B, 6000)));
}

#[test]
fn without_hairpinning_or_a_mapping_packets_to_the_outside_address_bounce() {
    let mut nat = Translator::new(NatConfig { hairpin: false, ..config(Ei, Ei) });
    let b = mapped(&mut nat, ep(B, 6000), ep(S1, 3478), 0);
    let sent = udp(Out, ep(A, 5000), b);
    let (verdict, turned) = run(&mut nat, Out, sent.clone(), 1);
    assert_eq!(verdict, Verdict::Bounce);
    assert_eq!(&turned[14..], &sent[14..], "untouched but for the MACs");
    assert_eq!((&turned[..6], &turned[6..12]), (&ROUTER_MAC[..], &GATEWAY_MAC[..]));
    // With hairpinning, a port no mapping holds is the router's own.
    let mut nat = translator(Ei, Ei);
    let sent = udp(Out, ep(A, 5000), ep(OUTSIDE, 22));
    let (verdict, turned) = run(&mut nat, Out, sent.clone(), 0);
    assert_eq!((verdict, &turned[14..]), (Verdict::Bounce, &sent[14..]));
    let (verdict, _) = run(&mut nat, Out, echo(Out, A, OUTSIDE, 8, 9), 0);
    assert_eq!(verdict, Verdict::Bounce);
    assert!(nat.mappings(0).is_empty(), "a bounce makes no mapping");
}

// ---- Checksums ----

#[test]
fn checksums_stay_valid_after_every_rewrite() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut nat = Translator::new(NatConfig { port_preservation: false, ..config(Ei, Ei) });
    for i in 0..500u64 {
        let payload: Vec<u8> = (0..rng.next_u32() % 64).map(|_| rng.next_u32() as u8).collect();
        let inside = ep(Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8), rng.next_u32() as u16 | 1);
        let remote = ep(Ipv4Addr::new(198, 51, 100, rng.next_u32() as u8), rng.next_u32() as u16 | 1);
        let now = i * SECOND;
        let (verdict, out) = run(
            &mut nat,
            Out,
            frame(
                Out,
                &ipv4(*inside.ip(), *remote.ip(), 17, &udp_header(inside, remote, &payload), i as u16, 0),
            ),
            now,
        );
        assert_eq!(verdict, Verdict::Translated);
        let reply =
            frame(In, &ipv4(*remote.ip(), OUTSIDE, 17, &udp_header(remote, src_of(&out), &payload), 1, 0));
        assert_eq!(run(&mut nat, In, reply, now).0, Verdict::Translated);
        let segment = frame(
            Out,
            &ipv4(*inside.ip(), *remote.ip(), 6, &tcp_header(inside, remote, 0x18, &payload), 2, 0),
        );
        let (verdict, out) = run(&mut nat, Out, segment, now);
        assert_eq!(verdict, Verdict::Translated);
        let answer = frame(
            In,
            &ipv4(*remote.ip(), OUTSIDE, 6, &tcp_header(remote, src_of(&out), 0x10, &payload), 3, 0),
        );
        assert_eq!(run(&mut nat, In, answer, now).0, Verdict::Translated);
        let (verdict, _) = run(&mut nat, Out, echo(Out, *inside.ip(), *remote.ip(), 8, inside.port()), now);
        assert_eq!(verdict, Verdict::Translated);
    }
}

#[test]
fn a_zero_udp_checksum_stays_zero() {
    let mut nat = translator(Ei, Ei);
    let mut transport = udp_header(ep(A, 5000), ep(S1, 3478), b"data");
    transport[6..8].fill(0);
    let (verdict, out) = run(&mut nat, Out, frame(Out, &ipv4(A, S1, 17, &transport, 1, 0)), 0);
    assert_eq!(verdict, Verdict::Translated);
    assert_eq!(&out[14 + 20 + 6..14 + 20 + 8], [0, 0]);
}

#[test]
fn a_udp_checksum_that_comes_out_zero_is_sent_as_ffff() {
    // Find a payload whose translated datagram sums to 0xffff, so that the computed checksum
    // is 0 and RFC 768 asks for 0xffff instead.
    let translated = |word: u16| {
        let sent = frame(Out, &udp_packet(ep(A, 5000), ep(S1, 3478), &word.to_be_bytes()));
        run(&mut translator(Ei, Ei), Out, sent, 0).1
    };
    let expected = |word: u16| udp_packet(ep(OUTSIDE, 5000), ep(S1, 3478), &word.to_be_bytes());
    let word = (0..=u16::MAX)
        .find(|&word| {
            let packet = expected(word);
            pnet_packet::udp::ipv4_checksum(&UdpPacket::new(&packet[20..]).expect("udp"), &OUTSIDE, &S1) == 0
        })
        .expect("some payload sums to zero");
    let out = translated(word);
    assert_eq!(&out[14 + 20 + 6..14 + 20 + 8], [0xff, 0xff]);
}

#[test]
fn partial_checksums_change_with_addresses_only() {
    // A CHECKSUM_PARTIAL frame carries the pseudo-header sum (not complemented) for the
    // sender's offload to finish; the ports are not in it.
    let pseudo = |src: Ipv4Addr, dst: Ipv4Addr, len: u16| {
        let mut words = [0u8; 12];
        words[..4].copy_from_slice(&src.octets());
        words[4..8].copy_from_slice(&dst.octets());
        words[9] = 17;
        words[10..12].copy_from_slice(&len.to_be_bytes());
        checksum::fold(checksum::sum(&words))
    };
    let mut sent = udp(Out, ep(A, 5000), ep(S1, 3478));
    sent[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&pseudo(A, S1, 12).to_be_bytes());
    let mut nat = Translator::new(NatConfig { port_preservation: false, ..config(Ei, Ei) });
    assert_eq!(nat.process(&mut sent, Out, L4Checksum::Partial, 0), Verdict::Translated);
    assert_ne!(src_of(&sent).port(), 5000);
    assert_eq!(&sent[14 + 20 + 6..14 + 20 + 8], pseudo(OUTSIDE, S1, 12).to_be_bytes());
    assert_eq!(packet(&sent).get_checksum(), pnet_packet::ipv4::checksum(&packet(&sent)));
}

// ---- ICMP ----

#[test]
fn icmp_echo_uses_the_identifier_as_port() {
    let mut nat = translator(Ei, Apd);
    let (verdict, request) = run(&mut nat, Out, echo(Out, A, S1, 8, 77), 0);
    assert_eq!(verdict, Verdict::Translated);
    let id = echo_id(&request);
    assert_eq!(*src_of(&request).ip(), OUTSIDE);
    assert!(PortRange::DEFAULT.contains(id), "77 is below the range: {id}");
    let (verdict, reply) = run(&mut nat, In, echo(In, S1, OUTSIDE, 0, id), 1);
    assert_eq!((verdict, dst_of(&reply)), (Verdict::Translated, ep(A, 77)));
    // Filtered by the remote address like any mapping.
    assert_eq!(run(&mut nat, In, echo(In, S2, OUTSIDE, 0, id), 2).0, Verdict::Drop(DropReason::Filtered));
    // Echo requests from outside are for the router.
    assert_eq!(run(&mut nat, In, echo(In, S1, OUTSIDE, 8, id), 3).0, Verdict::Pass);
    // An identifier in the range is preserved.
    let (_, request) = run(&mut nat, Out, echo(Out, B, S1, 8, 4242), 4);
    assert_eq!(echo_id(&request), 4242);
}

#[test]
fn inbound_icmp_errors_about_udp_tcp_and_echo_are_translated() {
    let mut nat = Translator::new(NatConfig { port_preservation: false, ..config(Ei, Apd) });
    let original_udp = udp_packet(ep(A, 5000), ep(S1, 3478), b"data");
    let original_tcp = tcp_packet(ep(A, 5001), ep(S1, 80), 0x02);
    let original_echo = echo_packet(A, S1, 8, 77);
    for (original, embed, kind, code) in [
        // Port unreachable from the remote, with the whole datagram.
        (&original_udp, usize::MAX, 3, 3),
        // Time exceeded from a hop, with only 8 bytes of the TCP header (no TCP checksum).
        (&original_tcp, 28, 11, 0),
        // Time exceeded about an echo request, and 576-byte-style copies of the rest.
        (&original_echo, usize::MAX, 11, 0),
        // Fragmentation needed with the TCP checksum in the copy.
        (&original_tcp, 40, 3, 4),
    ] {
        let (verdict, out) = run(&mut nat, Out, frame(Out, original), 0);
        assert_eq!(verdict, Verdict::Translated);
        let translated = &out[14..];
        let source = if kind == 3 && code == 3 { S1 } else { HOP };
        let error = icmp_error(In, source, OUTSIDE, kind, code, translated, embed);
        let (verdict, back) = run(&mut nat, In, error.clone(), 1);
        assert_eq!(verdict, Verdict::Translated, "{kind}/{code}");
        assert_eq!(*dst_of(&back).ip(), A);
        assert_eq!(packet(&back).get_source(), source);
        let copied = embed.min(original.len());
        assert_eq!(embedded_of(&back), &original[..copied], "{kind}/{code}: the sender's own packet");
        assert_eq!(
            &back[14 + 20 + 4..14 + 20 + 8],
            &error[14 + 20 + 4..14 + 20 + 8],
            "the MTU field is kept"
        );
    }
}

#[test]
fn an_inside_hosts_icmp_error_about_an_inbound_packet_is_translated() {
    let mut nat = translator(Ei, Ei);
    let outside = mapped(&mut nat, ep(A, 5000), ep(S1, 3478), 0);
    let (_, delivered) = run(&mut nat, In, udp(In, ep(S2, 4000), outside), 1);
    assert_eq!(dst_of(&delivered), ep(A, 5000));
    // A has closed the socket: port unreachable about the datagram it was given.
    let error = icmp_error(Out, A, S2, 3, 3, &delivered[14..], usize::MAX);
    let (verdict, out) = run(&mut nat, Out, error, 2);
    assert_eq!(verdict, Verdict::Translated);
    assert_eq!((packet(&out).get_source(), packet(&out).get_destination()), (OUTSIDE, S2));
    assert_eq!(embedded_of(&out), &udp(In, ep(S2, 4000), outside)[14..], "the datagram S2 sent");
}

#[test]
fn the_routers_own_icmp_errors_about_translated_packets_are_translated() {
    let mut nat = translator(Ei, Ei);
    let outside = mapped(&mut nat, ep(A, 5000), ep(S1, 3478), 0);
    let (_, delivered) = run(&mut nat, In, udp(In, ep(S1, 3478), outside), 1);
    // The router's TTL ran out forwarding it inwards: its error goes out from its outside
    // address, embedding the inside destination.
    let error = icmp_error(Out, OUTSIDE, S1, 11, 0, &delivered[14..], usize::MAX);
    let (verdict, out) = run(&mut nat, Out, error, 2);
    assert_eq!(verdict, Verdict::Translated);
    assert_eq!(embedded_of(&out), &udp(In, ep(S1, 3478), outside)[14..]);
    // An error about the router's own traffic is its business.
    let own = udp_packet(ep(S1, 3478), ep(OUTSIDE, 61000), b"data");
    let error = icmp_error(Out, OUTSIDE, S1, 3, 3, &own, usize::MAX);
    assert_eq!(run(&mut nat, Out, error, 3).0, Verdict::Pass);
}

#[test]
fn icmp_errors_without_a_mapping_pass_and_about_another_remote_are_dropped() {
    let mut nat = translator(Ei, Ei);
    let outside = mapped(&mut nat, ep(A, 5000), ep(S1, 3478), 0);
    // About the router's own packet (no mapping holds its port).
    let own = udp_packet(ep(OUTSIDE, 61000), ep(S1, 53), b"data");
    assert_eq!(run(&mut nat, In, icmp_error(In, S1, OUTSIDE, 3, 3, &own, usize::MAX), 1).0, Verdict::Pass);
    // About a packet the mapping never sent (to S2): forged, or stale.
    let never = udp_packet(outside, ep(S2, 3478), b"data");
    let verdict = run(&mut nat, In, icmp_error(In, HOP, OUTSIDE, 11, 0, &never, usize::MAX), 1).0;
    assert_eq!(verdict, Verdict::Drop(DropReason::Filtered));
    // An inside host's error about a packet that never came through the NAT.
    let stray = udp_packet(ep(S2, 4000), ep(A, 6000), b"data");
    let verdict = run(&mut nat, Out, icmp_error(Out, A, S2, 3, 3, &stray, usize::MAX), 1).0;
    assert_eq!(verdict, Verdict::Drop(DropReason::Untranslatable));
    // Too short to hold the embedded transport header.
    let verdict = run(&mut nat, In, icmp_error(In, HOP, OUTSIDE, 11, 0, &never, 27), 1).0;
    assert_eq!(verdict, Verdict::Drop(DropReason::Malformed));
}

// ---- Timeouts ----

#[test]
fn udp_mappings_expire_after_the_udp_timeout_without_outbound_traffic() {
    let timeouts = Timeouts { udp: Duration::from_secs(30), ..Timeouts::default() };
    let mut nat = Translator::new(NatConfig { timeouts, port_preservation: false, ..config(Ei, Ei) });
    let outside = mapped(&mut nat, ep(A, 5000), ep(S1, 3478), 0);
    // Inbound traffic does not refresh the mapping (RFC 4787 REQ-6).
    assert_eq!(inbound(&mut nat, ep(S1, 3478), outside, 29 * SECOND), Some(ep(A, 5000)));
    assert_eq!(run(&mut nat, In, udp(In, ep(S1, 3478), outside), 30 * SECOND).0, Verdict::Pass, "expired");
    assert!(nat.mappings(30 * SECOND).is_empty());
    // Outbound traffic does.
    let outside = mapped(&mut nat, ep(A, 5000), ep(S1, 3478), 100 * SECOND);
    assert_eq!(mapped(&mut nat, ep(A, 5000), ep(S1, 3478), 120 * SECOND), outside);
    assert_eq!(inbound(&mut nat, ep(S1, 3478), outside, 149 * SECOND), Some(ep(A, 5000)));
    assert_eq!(run(&mut nat, In, udp(In, ep(S1, 3478), outside), 150 * SECOND).0, Verdict::Pass);
    // A runtime change of the timeout applies to live mappings.
    let outside = mapped(&mut nat, ep(A, 5000), ep(S1, 3478), 200 * SECOND);
    nat.reconfigure(NatConfig {
        timeouts: Timeouts { udp: Duration::from_secs(5), ..timeouts },
        ..*nat.config()
    });
    assert_eq!(run(&mut nat, In, udp(In, ep(S1, 3478), outside), 205 * SECOND).0, Verdict::Pass);
}

#[test]
fn tcp_mappings_live_long_once_answered_and_short_while_opening_or_closing() {
    let established = Timeouts::default().tcp_established.as_secs();
    let transitory = Timeouts::default().tcp_transitory.as_secs();
    let (remote, inside) = (ep(S1, 80), ep(A, 5000));
    let open = |nat: &mut Translator| {
        let (_, syn) = run(nat, Out, tcp(Out, inside, remote, 0x02), 0);
        src_of(&syn)
    };
    let alive = |nat: &Translator, secs: u64| !nat.mappings(secs * SECOND).is_empty();
    let answer = |nat: &mut Translator, outside: SocketAddrV4, flags: u8, secs: u64| {
        assert_eq!(run(nat, In, tcp(In, remote, outside, flags), secs * SECOND).0, Verdict::Translated);
    };
    // Never answered: the transitory timeout.
    let mut nat = translator(Ei, Ei);
    open(&mut nat);
    assert!(alive(&nat, transitory - 1) && !alive(&nat, transitory));
    // Answered: the established timeout.
    let mut nat = translator(Ei, Ei);
    let outside = open(&mut nat);
    answer(&mut nat, outside, 0x12, 1);
    assert!(alive(&nat, established - 1) && !alive(&nat, established));
    // A FIN each way: transitory again, from the last outbound segment.
    let mut nat = translator(Ei, Ei);
    let outside = open(&mut nat);
    answer(&mut nat, outside, 0x12, 1);
    run(&mut nat, Out, tcp(Out, inside, remote, 0x11), 2 * SECOND);
    assert!(alive(&nat, transitory + 2), "one FIN is not a close");
    answer(&mut nat, outside, 0x11, 3);
    assert!(alive(&nat, transitory + 1) && !alive(&nat, transitory + 2));
    // A RST: transitory.
    let mut nat = translator(Ei, Ei);
    let outside = open(&mut nat);
    answer(&mut nat, outside, 0x12, 1);
    answer(&mut nat, outside, 0x14, 2);
    assert!(alive(&nat, transitory - 1) && !alive(&nat, transitory));
    // A new connection from the closed mapping is transitory until answered, then established.
    run(&mut nat, Out, tcp(Out, inside, remote, 0x02), 10 * SECOND);
    assert!(!alive(&nat, transitory + 10));
    run(&mut nat, Out, tcp(Out, inside, remote, 0x02), 20 * SECOND);
    answer(&mut nat, outside, 0x12, 21);
    assert!(alive(&nat, transitory + 20));
}

#[test]
fn icmp_mappings_expire_after_60_seconds() {
    let mut nat = translator(Ei, Ei);
    let (_, request) = run(&mut nat, Out, echo(Out, A, S1, 8, 4242), 0);
    let id = echo_id(&request);
    assert_eq!(run(&mut nat, In, echo(In, S1, OUTSIDE, 0, id), 59 * SECOND).0, Verdict::Translated);
    assert_eq!(run(&mut nat, In, echo(In, S1, OUTSIDE, 0, id), 60 * SECOND).0, Verdict::Pass);
}

#[test]
fn huge_timeouts_and_times_saturate() {
    let timeouts = Timeouts { udp: Duration::MAX, ..Timeouts::default() };
    let mut nat = Translator::new(NatConfig { timeouts, ..config(Ei, Ei) });
    let outside = mapped(&mut nat, ep(A, 5000), ep(S1, 3478), u64::MAX - 1);
    assert_eq!(inbound(&mut nat, ep(S1, 3478), outside, u64::MAX - 1), Some(ep(A, 5000)));
    // A time before the mapping was made (a caller's clock going backwards) reads as age 0.
    assert_eq!(nat.mappings(0)[0].age, Duration::ZERO);
}

// ---- Runtime changes ----

#[test]
fn rebind_forgets_every_mapping_and_the_next_packet_gets_a_new_port() {
    let mut nat = translator(Ei, Ei);
    let before = mapped(&mut nat, ep(A, 5000), ep(S1, 3478), 0);
    assert_eq!(before.port(), 5000);
    nat.rebind();
    assert!(nat.mappings(1).is_empty());
    assert_eq!(run(&mut nat, In, udp(In, ep(S1, 3478), before), 1).0, Verdict::Pass, "the old port is gone");
    let after = mapped(&mut nat, ep(A, 5000), ep(S1, 3478), 2);
    assert_ne!(after, before, "a new port despite port preservation");
    assert_eq!(inbound(&mut nat, ep(S1, 3478), after, 3), Some(ep(A, 5000)));
}

#[test]
fn reconfiguring_filtering_keeps_mappings_and_reconfiguring_mapping_forgets_them() {
    let mut nat = translator(Ei, Ei);
    let outside = mapped(&mut nat, ep(A, 5000), ep(S1, 3478), 0);
    assert!(inbound(&mut nat, ep(S2, 1), outside, 1).is_some());
    nat.reconfigure(NatConfig { filtering: Apd, ..*nat.config() });
    assert_eq!(nat.mappings(2).len(), 1);
    assert_eq!(inbound(&mut nat, ep(S2, 1), outside, 2), None, "the new filter applies at once");
    assert_eq!(inbound(&mut nat, ep(S1, 3478), outside, 2), Some(ep(A, 5000)));
    nat.reconfigure(NatConfig { mapping: Apd, ..*nat.config() });
    assert!(nat.mappings(3).is_empty());
    assert_eq!(classify_mapping(&mut nat).0, Apd);
}

// ---- The mapping table ----

#[test]
fn the_mapping_table_shows_inside_outside_remotes_and_age() {
    let mut nat = translator(Ei, Ei);
    mapped(&mut nat, ep(A, 5000), ep(S2, 3478), SECOND);
    mapped(&mut nat, ep(A, 5000), ep(S1, 3479), 2 * SECOND);
    run(&mut nat, Out, echo(Out, B, S1, 8, 4242), 3 * SECOND);
    let table = nat.mappings(4 * SECOND);
    assert_eq!(
        table,
        [
            MappingView {
                protocol: Protocol::Udp,
                inside: ep(A, 5000),
                outside: ep(OUTSIDE, 5000),
                remotes: vec![ep(S1, 3479), ep(S2, 3478)],
                age: Duration::from_secs(3),
                idle: Duration::from_secs(2),
            },
            MappingView {
                protocol: Protocol::Icmp,
                inside: ep(B, 4242),
                outside: ep(OUTSIDE, 4242),
                remotes: vec![ep(S1, 0)],
                age: Duration::from_secs(1),
                idle: Duration::from_secs(1),
            },
        ]
    );
    assert_eq!(
        table[0].to_string(),
        "udp 10.0.0.2:5000 -> 203.0.113.1:5000 with 198.51.100.1:3479, 198.51.100.2:3478 (age 3.0s, idle 2.0s)"
    );
}

// ---- Fragments ----

#[test]
fn later_fragments_follow_their_first_fragment() {
    let mut nat = translator(Ei, Ei);
    let transport = udp_header(ep(A, 5000), ep(S1, 3478), &[7; 64]);
    // The first fragment carries the UDP header and 24 bytes; the second the remaining 48.
    let first = frame(Out, &ipv4(A, S1, 17, &transport[..32], 99, 0x2000));
    let later = frame(Out, &ipv4(A, S1, 17, &transport[32..], 99, 4));
    let (verdict, out) = run(&mut nat, Out, first, 0);
    assert_eq!((verdict, src_of(&out)), (Verdict::Translated, ep(OUTSIDE, 5000)));
    let (verdict, out) = run(&mut nat, Out, later.clone(), SECOND);
    assert_eq!(verdict, Verdict::Translated);
    assert_eq!((packet(&out).get_source(), packet(&out).get_destination()), (OUTSIDE, S1));
    assert_eq!(&out[14 + 20..], &transport[32..], "the payload is untouched");
    // Reassembled, the translated datagram's checksum holds.
    let mut whole = udp_header(ep(OUTSIDE, 5000), ep(S1, 3478), &[7; 64]);
    whole[..32].copy_from_slice(
        &run(&mut nat, Out, frame(Out, &ipv4(A, S1, 17, &transport[..32], 100, 0x2000)), 2).1[34..],
    );
    assert!(verifies(
        u16::from_be_bytes([whole[6], whole[7]]),
        pnet_packet::udp::ipv4_checksum(&UdpPacket::new(&whole).expect("udp"), &OUTSIDE, &S1)
    ));
    // 30 s later, or with another identifier, the first fragment is unknown.
    assert_eq!(run(&mut nat, Out, later, 31 * SECOND).0, Verdict::Drop(DropReason::Untranslatable));
    let stray = frame(Out, &ipv4(A, S1, 17, &transport[32..], 7, 4));
    assert_eq!(run(&mut nat, Out, stray, 31 * SECOND).0, Verdict::Drop(DropReason::Untranslatable));
    // Inbound: unknown later fragments go to the router; known ones follow their first.
    let reply = udp_header(ep(S1, 3478), ep(OUTSIDE, 5000), &[8; 64]);
    let later_in = frame(In, &ipv4(S1, OUTSIDE, 17, &reply[32..], 55, 4));
    assert_eq!(run(&mut nat, In, later_in.clone(), 32 * SECOND).0, Verdict::Pass);
    mapped(&mut nat, ep(A, 5000), ep(S1, 3478), 32 * SECOND);
    assert_eq!(
        run(&mut nat, In, frame(In, &ipv4(S1, OUTSIDE, 17, &reply[..32], 55, 0x2000)), 33 * SECOND).0,
        Verdict::Translated
    );
    let (verdict, back) = run(&mut nat, In, later_in, 33 * SECOND);
    assert_eq!((verdict, packet(&back).get_destination()), (Verdict::Translated, A));
}

// ---- What the NAT leaves alone, and what it refuses ----

#[test]
fn what_is_not_ipv4_or_not_the_nats_business_passes() {
    let mut nat = translator(Ei, Ei);
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&GATEWAY_MAC);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    let mut ipv6 = arp.clone();
    ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
    for frame in [arp, ipv6, vec![0; 13]] {
        assert_eq!(run(&mut nat, Out, frame.clone(), 0).0, Verdict::Pass);
        assert_eq!(run(&mut nat, In, frame, 0).0, Verdict::Pass);
    }
    // The router's own traffic, traffic for other addresses, unmapped ports, echo requests.
    let own = udp(Out, ep(OUTSIDE, 61000), ep(S1, 53));
    assert_eq!(run(&mut nat, Out, own.clone(), 0), (Verdict::Pass, own));
    assert_eq!(run(&mut nat, In, udp(In, ep(S1, 53), ep(S2, 61000)), 0).0, Verdict::Pass);
    assert_eq!(run(&mut nat, In, udp(In, ep(S1, 53), ep(OUTSIDE, 61000)), 0).0, Verdict::Pass);
    assert_eq!(run(&mut nat, In, tcp(In, ep(S1, 53), ep(OUTSIDE, 22), 0x02), 0).0, Verdict::Pass);
    let gre = frame(In, &ipv4(S1, OUTSIDE, 47, &[0; 8], 1, 0));
    assert_eq!(run(&mut nat, In, gre, 0).0, Verdict::Pass);
    assert!(nat.mappings(0).is_empty());
}

#[test]
fn inside_packets_that_cannot_be_translated_are_dropped() {
    let mut nat = translator(Ei, Ei);
    let gre = frame(Out, &ipv4(A, S1, 47, &[0; 8], 1, 0));
    assert_eq!(run(&mut nat, Out, gre, 0).0, Verdict::Drop(DropReason::Untranslatable));
    assert_eq!(run(&mut nat, Out, echo(Out, A, S1, 0, 5), 0).0, Verdict::Drop(DropReason::Untranslatable));
    let timestamp = frame(Out, &ipv4(A, S1, 1, &icmp_message(13, 0, [0; 4], &[0; 12]), 1, 0));
    assert_eq!(run(&mut nat, Out, timestamp, 0).0, Verdict::Drop(DropReason::Untranslatable));
    assert_eq!(nat.counters().untranslatable, 3);
}

#[test]
fn truncated_and_garbage_frames_never_panic() {
    let mut nat = translator(Ei, Ei);
    let outside = mapped(&mut nat, ep(A, 5000), ep(S1, 3478), 0);
    let samples = [
        udp(Out, ep(A, 5000), ep(S1, 3478)),
        tcp(Out, ep(A, 5000), ep(S1, 80), 0x02),
        echo(Out, A, S1, 8, 1),
        udp(In, ep(S1, 3478), outside),
        icmp_error(In, HOP, OUTSIDE, 11, 0, &udp_packet(outside, ep(S1, 3478), b"data"), usize::MAX),
        icmp_error(Out, A, S1, 3, 3, &udp_packet(ep(S1, 3478), ep(A, 5000), b"data"), usize::MAX),
        UDP_OUT.to_vec(),
        FRAG_NEEDED_IN.to_vec(),
    ];
    for sample in &samples {
        for len in 0..sample.len() {
            for direction in [Out, In] {
                let mut cut = sample[..len].to_vec();
                let verdict = nat.process(&mut cut, direction, L4Checksum::Complete, 1);
                if len > 14 {
                    assert!(
                        !matches!(verdict, Verdict::Translated | Verdict::Hairpin),
                        "{len} bytes of {sample:02x?}"
                    );
                }
            }
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for _ in 0..20_000 {
        let mut garbage: Vec<u8> = (0..rng.next_u32() % 120).map(|_| rng.next_u32() as u8).collect();
        if garbage.len() > 34 {
            garbage[12..14].copy_from_slice(&[0x08, 0x00]);
            garbage[14] = 0x45;
            if rng.next_u32() % 2 == 0 {
                garbage[30..34].copy_from_slice(&OUTSIDE.octets());
            }
        }
        let direction = if rng.next_u32() % 2 == 0 { Out } else { In };
        nat.process(&mut garbage, direction, L4Checksum::Complete, 2);
    }
}

#[test]
fn counters_count_every_verdict() {
    let mut nat = translator(Ei, Apd);
    let outside = mapped(&mut nat, ep(A, 5000), ep(S1, 3478), 0);
    inbound(&mut nat, ep(S1, 3478), outside, 0);
    inbound(&mut nat, ep(S2, 3478), outside, 0);
    run(&mut nat, Out, udp(Out, ep(A, 5000), ep(OUTSIDE, 22)), 0);
    run(&mut nat, In, udp(In, ep(S1, 3478), ep(OUTSIDE, 22)), 0);
    let mut short = udp(Out, ep(A, 5000), ep(S1, 3478));
    short.truncate(30);
    run(&mut nat, Out, short, 0);
    let counters = nat.counters();
    assert_eq!(
        counters,
        NatCounters {
            translated_out: 1,
            translated_in: 1,
            filtered: 1,
            bounced: 1,
            passed: 1,
            malformed: 1,
            ..NatCounters::default()
        }
    );
    assert_eq!(
        counters.to_string(),
        "translated 1 out / 1 in, hairpinned 0, bounced 1, passed 1, dropped: filtered 1, untranslatable 0, \
         ports exhausted 0, malformed 1"
    );
}
