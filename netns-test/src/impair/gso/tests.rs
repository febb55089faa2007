use super::*;

/// An Ethernet + IPv4 + TCP frame (20-byte TCP header plus 12 bytes of options) carrying
/// `payload`, with the TCP checksum field left as given.
fn tcp4(payload: &[u8], flags: u8, check: u16) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 32];
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((20 + 32 + payload.len()) as u16).to_be_bytes());
    f[18..20].copy_from_slice(&0x1234u16.to_be_bytes());
    f[20] = 0x40;
    f[22] = 64;
    f[23] = TCP;
    f[26..30].copy_from_slice(&[10, 0, 0, 1]);
    f[30..34].copy_from_slice(&[10, 0, 0, 2]);
    let ip_sum = !fold(ones_sum(&f[14..34], 0));
    f[24..26].copy_from_slice(&ip_sum.to_be_bytes());
    f[34..36].copy_from_slice(&40000u16.to_be_bytes());
    f[36..38].copy_from_slice(&5001u16.to_be_bytes());
    f[38..42].copy_from_slice(&0xffff_fc00u32.to_be_bytes());
    f[46] = 8 << 4;
    f[47] = flags;
    f[50..52].copy_from_slice(&check.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn udp6(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 40 + 8];
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    f[14] = 0x60;
    f[18..20].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f[20] = UDP;
    f[21] = 64;
    f[22..38].copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f[38..54].copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    f[54..56].copy_from_slice(&7u16.to_be_bytes());
    f[56..58].copy_from_slice(&9u16.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 256) as u8).collect()
}

/// Whether the L4 checksum of an IPv4 or IPv6 packet in `frame` verifies.
fn l4_valid(frame: &[u8]) -> bool {
    let h = Headers::parse(frame).unwrap();
    let l4_len = (frame.len() - h.l4) as u32;
    let addresses = if h.v6 { &frame[h.l3 + 8..h.l3 + 40] } else { &frame[h.l3 + 12..h.l3 + 20] };
    let pseudo = ones_sum(addresses, u32::from(h.l4_proto) + l4_len);
    fold(ones_sum(&frame[h.l4..], pseudo)) == 0xffff
}

#[test]
fn the_rfc_1071_example_sums_right() {
    assert_eq!(fold(ones_sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0)), 0xddf2);
    assert_eq!(fold(ones_sum(&[0xff], 0)), 0xff00);
}

#[test]
fn vnet_header_round_trips() {
    let hdr = VnetHdr { flags: 1, gso_type: 4, hdr_len: 86, gso_size: 1428, csum_start: 54, csum_offset: 16 };
    assert_eq!(VnetHdr::parse(&hdr.emit()), hdr);
    assert!(hdr.is_gso() && hdr.needs_csum());
    assert!(!VnetHdr::default().is_gso());
}

#[test]
fn a_partial_checksum_is_completed() {
    let data = payload(999);
    let complete = tcp4(&data, 0x18, 0);
    // What the sender leaves: the pseudo-header sum, not inverted.
    let pseudo = fold(ones_sum(&[10, 0, 0, 1, 10, 0, 0, 2], u32::from(TCP) + (32 + 999)));
    let mut partial = tcp4(&data, 0x18, pseudo);
    assert!(!l4_valid(&partial));
    let hdr = VnetHdr { flags: NEEDS_CSUM, csum_start: 34, csum_offset: 16, ..VnetHdr::default() };
    assert!(complete_checksum(&hdr, &mut partial));
    assert!(l4_valid(&partial));
    assert_eq!(partial[..50], complete[..50]);
    // Nothing to do, or a header pointing outside the frame: left alone.
    assert!(!complete_checksum(&VnetHdr::default(), &mut partial));
    let wild = VnetHdr { flags: NEEDS_CSUM, csum_start: 2000, csum_offset: 16, ..VnetHdr::default() };
    assert!(!complete_checksum(&wild, &mut partial));
}

#[test]
fn a_tcp_superframe_becomes_wire_packets() {
    let data = payload(3500);
    let frame = tcp4(&data, 0x80 | 0x18 | 0x01, 0xbeef);
    let hdr = VnetHdr {
        flags: NEEDS_CSUM,
        gso_type: GSO_TCPV4,
        hdr_len: 66,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    };
    assert_eq!(wire_size(&hdr, &frame), (3, frame.len() + 2 * 66));
    let segments = segment(&hdr, &frame).unwrap();
    assert_eq!(segments.len(), 3);
    let mut joined = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        assert_eq!(seg[..VNET_LEN], [0; VNET_LEN], "segments need no offload");
        let p = &seg[VNET_LEN..];
        let chunk = if i < 2 { 1448 } else { 3500 - 2 * 1448 };
        assert_eq!(p.len(), 66 + chunk);
        assert_eq!(u16::from_be_bytes([p[16], p[17]]) as usize, 52 + chunk, "IPv4 total length");
        assert_eq!(u16::from_be_bytes([p[18], p[19]]), 0x1234 + i as u16, "IPv4 ID");
        assert_eq!(fold(ones_sum(&p[14..34], 0)), 0xffff, "IPv4 header checksum");
        assert!(l4_valid(p), "TCP checksum of segment {i}");
        let seq = u32::from_be_bytes(p[38..42].try_into().unwrap());
        assert_eq!(seq, 0xffff_fc00u32.wrapping_add((i * 1448) as u32), "sequence numbers wrap");
        let flags = p[47];
        assert_eq!(flags & TCP_CWR != 0, i == 0, "CWR only on the first");
        assert_eq!(flags & (TCP_FIN | TCP_PSH) != 0, i == 2, "FIN and PSH only on the last");
        joined.extend_from_slice(&p[66..]);
    }
    assert_eq!(joined, data);
}

#[test]
fn a_udp_superframe_over_ipv6_becomes_datagrams() {
    let data = payload(2500);
    let frame = udp6(&data);
    let hdr = VnetHdr {
        flags: NEEDS_CSUM,
        gso_type: GSO_UDP_L4,
        hdr_len: 62,
        gso_size: 1000,
        csum_start: 54,
        csum_offset: 6,
    };
    let segments = segment(&hdr, &frame).unwrap();
    assert_eq!(segments.len(), 3);
    for (i, seg) in segments.iter().enumerate() {
        let p = &seg[VNET_LEN..];
        let chunk = if i < 2 { 1000 } else { 500 };
        assert_eq!(u16::from_be_bytes([p[18], p[19]]) as usize, 8 + chunk, "IPv6 payload length");
        assert_eq!(u16::from_be_bytes([p[58], p[59]]) as usize, 8 + chunk, "UDP length");
        assert!(l4_valid(p));
    }
}

#[test]
fn unknown_kinds_are_left_whole() {
    let frame = tcp4(&payload(3000), 0, 0);
    // UFO (IP fragmentation) is not cut.
    let ufo = VnetHdr { gso_type: 3, gso_size: 1000, ..VnetHdr::default() };
    assert!(segment(&ufo, &frame).is_none());
    // A TCP header announced as UDP GSO.
    let wrong = VnetHdr { gso_type: GSO_UDP_L4, gso_size: 1000, ..VnetHdr::default() };
    assert!(segment(&wrong, &frame).is_none());
    // ARP, and a runt.
    let mut arp = vec![0u8; 42];
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let tcp = VnetHdr { gso_type: GSO_TCPV4, gso_size: 1000, ..VnetHdr::default() };
    assert!(segment(&tcp, &arp).is_none());
    assert_eq!(wire_size(&tcp, &arp), (1, 42));
    assert!(segment(&tcp, &[0u8; 10]).is_none());
}
