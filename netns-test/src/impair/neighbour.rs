//! Recognising neighbour discovery in a frame: ARP, and the ICMPv6 messages of IPv6
//! neighbour discovery, which link conditions spare from loss, duplication and corruption.

/// EtherType of ARP.
const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6.
const ETHERTYPE_IPV6: u16 = 0x86DD;
/// Ethernet header: destination, source, EtherType.
const ETHERNET_LEN: usize = 14;
/// The fixed IPv6 header.
const IPV6_LEN: usize = 40;
/// IPv6 "next header" values.
const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const DESTINATION_OPTIONS: u8 = 60;
const ICMPV6: u8 = 58;
/// ICMPv6 types of neighbour discovery (RFC 4861): router solicitation (133), router
/// advertisement, neighbour solicitation, neighbour advertisement, redirect (137).
const NEIGHBOUR_DISCOVERY: std::ops::RangeInclusive<u8> = 133..=137;
/// Extension headers looked through before giving up; real neighbour discovery has none.
const MAX_EXTENSIONS: usize = 4;

/// Whether an Ethernet frame is ARP, or an IPv6 packet carrying an ICMPv6 neighbour-discovery
/// message (types 133 to 137) directly after its header or after hop-by-hop, routing or
/// destination options headers. Anything else, a VLAN-tagged frame or an IPv6 fragment
/// included, is not.
pub(crate) fn is_neighbour_discovery(frame: &[u8]) -> bool {
    let Some(&[high, low]) = frame.get(12..ETHERNET_LEN) else {
        return false;
    };
    match u16::from_be_bytes([high, low]) {
        ETHERTYPE_ARP => true,
        ETHERTYPE_IPV6 => {
            icmpv6_type(&frame[ETHERNET_LEN..]).is_some_and(|t| NEIGHBOUR_DISCOVERY.contains(&t))
        }
        _ => false,
    }
}

/// The ICMPv6 type of an IPv6 packet, if it carries ICMPv6 behind at most a few of the
/// extension headers that have the common length format.
fn icmpv6_type(packet: &[u8]) -> Option<u8> {
    let mut next = *packet.get(6)?;
    let mut offset = IPV6_LEN;
    for _ in 0..=MAX_EXTENSIONS {
        match next {
            ICMPV6 => return packet.get(offset).copied(),
            HOP_BY_HOP | ROUTING | DESTINATION_OPTIONS => {
                next = *packet.get(offset)?;
                // The length counts 8-byte units after the first 8 bytes.
                offset += (usize::from(*packet.get(offset + 1)?) + 1) * 8;
            }
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet header with EtherType `ethertype`, then `payload`.
    fn frame(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0xff; 6];
        frame.extend_from_slice(&[0x02, 0x6e, 0x74, 0, 0, 2]);
        frame.extend_from_slice(&ethertype.to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    /// An IPv6 header with `next` as its next header, then `rest`.
    fn ipv6(next: u8, rest: &[u8]) -> Vec<u8> {
        let mut packet = vec![0x60, 0, 0, 0];
        packet.extend_from_slice(&(rest.len() as u16).to_be_bytes());
        packet.extend_from_slice(&[next, 255]);
        packet.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        packet.extend_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 2]);
        packet.extend_from_slice(rest);
        packet
    }

    /// An ICMPv6 message of `kind`, checksum left zero.
    fn icmpv6(kind: u8) -> Vec<u8> {
        vec![kind, 0, 0, 0, 0, 0, 0, 0]
    }

    #[test]
    fn arp_is_neighbour_discovery() {
        // A request: Ethernet, IPv4, who has 1.1.1.1, tell 1.1.1.2.
        let request =
            [0, 1, 8, 0, 6, 4, 0, 1, 0x02, 0x6e, 0x74, 0, 0, 2, 1, 1, 1, 2, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1];
        assert!(is_neighbour_discovery(&frame(0x0806, &request)));
    }

    #[test]
    fn the_five_icmpv6_types_are_and_others_are_not() {
        for kind in 133..=137 {
            assert!(is_neighbour_discovery(&frame(0x86dd, &ipv6(58, &icmpv6(kind)))), "type {kind}");
        }
        // Echo request and reply, MLD reports and queries are not neighbour discovery.
        for kind in [128, 129, 130, 131, 143, 132, 138] {
            assert!(!is_neighbour_discovery(&frame(0x86dd, &ipv6(58, &icmpv6(kind)))), "type {kind}");
        }
    }

    #[test]
    fn behind_extension_headers() {
        // Hop-by-hop (8 bytes) then destination options (16 bytes) then a solicitation.
        let mut rest = vec![60, 0, 5, 2, 0, 0, 1, 0];
        rest.extend_from_slice(&[58, 1, 1, 4, 0, 0, 0, 0, 1, 4, 0, 0, 0, 0, 0, 0]);
        rest.extend_from_slice(&icmpv6(135));
        assert!(is_neighbour_discovery(&frame(0x86dd, &ipv6(0, &rest))));
        // A fragment header (44) stops the search.
        let mut fragment = vec![58, 0, 0, 0, 0, 0, 0, 1];
        fragment.extend_from_slice(&icmpv6(135));
        assert!(!is_neighbour_discovery(&frame(0x86dd, &ipv6(44, &fragment))));
    }

    #[test]
    fn other_frames_and_short_ones_are_not() {
        // IPv4 carrying ICMP.
        let ipv4 = [0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 1, 1, 1, 2, 1, 1, 1, 1, 8, 0, 0, 0, 0, 0, 0, 0];
        assert!(!is_neighbour_discovery(&frame(0x0800, &ipv4)));
        // TCP over IPv6; and the ARP EtherType behind a VLAN tag.
        assert!(!is_neighbour_discovery(&frame(0x86dd, &ipv6(6, &[0; 20]))));
        assert!(!is_neighbour_discovery(&frame(0x8100, &[0, 1, 0x08, 0x06])));
        // Cut short anywhere: never out of bounds, never neighbour discovery unless it is ARP.
        let solicitation = frame(0x86dd, &ipv6(58, &icmpv6(135)));
        for len in 0..solicitation.len() {
            let is = is_neighbour_discovery(&solicitation[..len]);
            assert_eq!(is, len > ETHERNET_LEN + IPV6_LEN, "{len} bytes");
        }
        assert!(!is_neighbour_discovery(&frame(0x86dd, &ipv6(0, &[58, 200]))));
    }
}
