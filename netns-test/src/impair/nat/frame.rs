//! Where things are in an Ethernet frame carrying IPv4, and reading and writing them.
//!
//! The offsets live in [`field`]; [`Ipv4`] is what the translator learns of a frame before it
//! decides, computed once. Nothing here allocates or panics on short input: every accessor is
//! bounds-checked by [`Ipv4::parse`] first, and an offset it did not check is never used.

use std::net::Ipv4Addr;

/// Field offsets, smoltcp style: Ethernet from the start of the frame, the others from the
/// start of their own header.
pub(crate) mod field {
    use std::ops::Range;

    pub(crate) const ETH_DST: Range<usize> = 0..6;
    pub(crate) const ETH_SRC: Range<usize> = 6..12;
    pub(crate) const ETH_TYPE: Range<usize> = 12..14;
    pub(crate) const ETH_LEN: usize = 14;
    pub(crate) const ETHERTYPE_IPV4: u16 = 0x0800;

    pub(crate) const IP_VER_IHL: usize = 0;
    pub(crate) const IP_TOTAL_LEN: Range<usize> = 2..4;
    pub(crate) const IP_IDENT: Range<usize> = 4..6;
    pub(crate) const IP_FLAGS_FRAG: Range<usize> = 6..8;
    pub(crate) const IP_PROTOCOL: usize = 9;
    pub(crate) const IP_CHECKSUM: usize = 10;
    pub(crate) const IP_SRC: usize = 12;
    pub(crate) const IP_DST: usize = 16;
    pub(crate) const IP_MIN_LEN: usize = 20;
    pub(crate) const IP_MORE_FRAGMENTS: u16 = 0x2000;
    pub(crate) const IP_OFFSET_MASK: u16 = 0x1fff;

    /// Source and destination ports of UDP and TCP.
    pub(crate) const SRC_PORT: usize = 0;
    pub(crate) const DST_PORT: usize = 2;
    pub(crate) const UDP_CHECKSUM: usize = 6;
    pub(crate) const UDP_LEN: usize = 8;
    pub(crate) const TCP_FLAGS: usize = 13;
    pub(crate) const TCP_CHECKSUM: usize = 16;
    pub(crate) const TCP_MIN_LEN: usize = 20;

    pub(crate) const ICMP_TYPE: usize = 0;
    pub(crate) const ICMP_CHECKSUM: usize = 2;
    /// The identifier of an echo request or reply.
    pub(crate) const ICMP_ECHO_ID: usize = 4;
    /// Where an ICMP error's embedded packet starts.
    pub(crate) const ICMP_ERROR_PAYLOAD: usize = 8;
    pub(crate) const ICMP_MIN_LEN: usize = 8;
    /// What an ICMP error must carry of the offending packet's transport header (RFC 792).
    pub(crate) const EMBEDDED_TRANSPORT_LEN: usize = 8;

    pub(crate) const PROTO_ICMP: u8 = 1;
    pub(crate) const PROTO_TCP: u8 = 6;
    pub(crate) const PROTO_UDP: u8 = 17;

    pub(crate) const ICMP_ECHO_REPLY: u8 = 0;
    pub(crate) const ICMP_UNREACHABLE: u8 = 3;
    pub(crate) const ICMP_ECHO_REQUEST: u8 = 8;
    pub(crate) const ICMP_TIME_EXCEEDED: u8 = 11;
    pub(crate) const ICMP_PARAMETER_PROBLEM: u8 = 12;

    pub(crate) const TCP_FIN: u8 = 0x01;
    pub(crate) const TCP_SYN: u8 = 0x02;
    pub(crate) const TCP_RST: u8 = 0x04;
    pub(crate) const TCP_ACK: u8 = 0x10;
}

/// A big-endian 16-bit word at `at`. The caller has checked the bounds.
pub(crate) fn get16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

/// Writes a big-endian 16-bit word at `at`, returning the word it replaced.
pub(crate) fn set16(bytes: &mut [u8], at: usize, value: u16) -> u16 {
    let old = get16(bytes, at);
    bytes[at..at + 2].copy_from_slice(&value.to_be_bytes());
    old
}

/// The IPv4 address at `at`.
pub(crate) fn get_addr(bytes: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3])
}

/// Writes an IPv4 address at `at`, returning the one it replaced.
pub(crate) fn set_addr(bytes: &mut [u8], at: usize, value: Ipv4Addr) -> Ipv4Addr {
    let old = get_addr(bytes, at);
    bytes[at..at + 4].copy_from_slice(&value.octets());
    old
}

/// The frame's EtherType, if it is long enough to have one.
pub(crate) fn ethertype(frame: &[u8]) -> Option<u16> {
    frame.get(field::ETH_TYPE).map(|bytes| u16::from_be_bytes([bytes[0], bytes[1]]))
}

/// Swaps the Ethernet source and destination, to send a frame back where it came from.
pub(crate) fn swap_macs(frame: &mut [u8]) {
    let (dst, rest) = frame.split_at_mut(field::ETH_DST.end);
    dst.swap_with_slice(&mut rest[..field::ETH_SRC.len()]);
}

/// Which piece of a datagram a packet is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    /// A datagram that is not fragmented.
    Whole,
    /// The first fragment: it has the transport header, and more fragments follow.
    First,
    /// A later fragment: no transport header, only payload.
    Later,
}

/// An IPv4 header found in a buffer (a frame, or the payload of an ICMP error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ipv4 {
    /// Where the IPv4 header starts.
    pub(crate) at: usize,
    /// Where the transport header starts.
    pub(crate) transport: usize,
    /// Where the datagram (or what the buffer holds of it) ends.
    pub(crate) end: usize,
    pub(crate) protocol: u8,
    pub(crate) src: Ipv4Addr,
    pub(crate) dst: Ipv4Addr,
    pub(crate) ident: u16,
    pub(crate) piece: Piece,
}

impl Ipv4 {
    /// The IPv4 header at `at` in `bytes`, or `None` if it is not one (wrong version, a
    /// header length below 20 bytes or beyond the buffer).
    ///
    /// `truncated` accepts a datagram shorter than its total length says, as the copy inside
    /// an ICMP error is; otherwise the buffer must hold the whole datagram, and bytes after it
    /// (Ethernet padding) are not part of it. A total length of 0 stands for "to the end of
    /// the buffer", as in a BIG TCP superframe.
    pub(crate) fn parse(bytes: &[u8], at: usize, truncated: bool) -> Option<Ipv4> {
        let header = bytes.get(at..)?;
        if header.len() < field::IP_MIN_LEN || header[field::IP_VER_IHL] >> 4 != 4 {
            return None;
        }
        let header_len = usize::from(header[field::IP_VER_IHL] & 0x0f) * 4;
        let total = usize::from(get16(header, field::IP_TOTAL_LEN.start));
        let total = if total == 0 { header.len() } else { total };
        if header_len < field::IP_MIN_LEN || header_len > header.len() || total < header_len {
            return None;
        }
        let available = if truncated { total.min(header.len()) } else { total };
        if available > header.len() {
            return None;
        }
        let flags_frag = get16(header, field::IP_FLAGS_FRAG.start);
        let piece = match (flags_frag & field::IP_OFFSET_MASK, flags_frag & field::IP_MORE_FRAGMENTS != 0) {
            (0, false) => Piece::Whole,
            (0, true) => Piece::First,
            _ => Piece::Later,
        };
        Some(Ipv4 {
            at,
            transport: at + header_len,
            end: at + available,
            protocol: header[field::IP_PROTOCOL],
            src: get_addr(header, field::IP_SRC),
            dst: get_addr(header, field::IP_DST),
            ident: get16(header, field::IP_IDENT.start),
            piece,
        })
    }

    /// How many bytes of transport header and payload the buffer holds.
    pub(crate) fn transport_len(&self) -> usize {
        self.end - self.transport
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 header (20 bytes, no options) of a 28-byte UDP datagram 10.0.0.2 → 198.51.100.1.
    const HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00, 10, 0, 0, 2, 198, 51, 100, 1,
    ];

    fn datagram() -> Vec<u8> {
        let mut bytes = HEADER.to_vec();
        bytes.extend_from_slice(&[0x13, 0x88, 0x0d, 0x96, 0x00, 0x08, 0x00, 0x00]);
        bytes
    }

    #[test]
    fn parses_a_whole_datagram_and_ignores_padding() {
        let mut bytes = datagram();
        bytes.extend_from_slice(&[0; 18]);
        let ip = Ipv4::parse(&bytes, 0, false).expect("an IPv4 header");
        assert_eq!((ip.transport, ip.end, ip.protocol, ip.piece), (20, 28, 17, Piece::Whole));
        assert_eq!(
            (ip.src, ip.dst, ip.ident),
            (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(198, 51, 100, 1), 0x1234)
        );
    }

    #[test]
    fn refuses_what_is_not_a_whole_ipv4_header() {
        let bytes = datagram();
        for len in 0..20 {
            assert_eq!(Ipv4::parse(&bytes[..len], 0, true), None, "{len} bytes");
        }
        // Shorter than the total length: only an ICMP error's copy may be.
        assert_eq!(Ipv4::parse(&bytes[..27], 0, false), None);
        assert_eq!(Ipv4::parse(&bytes[..27], 0, true).map(|ip| ip.end), Some(27));
        let mut v6 = bytes.clone();
        v6[0] = 0x65;
        assert_eq!(Ipv4::parse(&v6, 0, false), None);
        for ihl in [0x40, 0x44, 0x4f] {
            let mut bad = bytes.clone();
            bad[0] = ihl;
            assert_eq!(Ipv4::parse(&bad, 0, false), None, "IHL {ihl:#x}");
        }
        let mut short_total = bytes.clone();
        short_total[3] = 19;
        assert_eq!(Ipv4::parse(&short_total, 0, false), None);
    }

    #[test]
    fn options_move_the_transport_header() {
        let mut bytes = HEADER.to_vec();
        bytes[0] = 0x46;
        bytes[3] = 32;
        bytes.extend_from_slice(&[0x01, 0x01, 0x01, 0x00]);
        bytes.extend_from_slice(&[0; 8]);
        assert_eq!(Ipv4::parse(&bytes, 0, false).map(|ip| ip.transport), Some(24));
    }

    #[test]
    fn tells_the_pieces_of_a_fragmented_datagram_apart() {
        let piece = |flags_frag: u16| {
            let mut bytes = datagram();
            bytes[6..8].copy_from_slice(&flags_frag.to_be_bytes());
            Ipv4::parse(&bytes, 0, false).map(|ip| ip.piece)
        };
        assert_eq!(piece(0x4000), Some(Piece::Whole), "DF alone");
        assert_eq!(piece(0x2000), Some(Piece::First));
        assert_eq!(piece(0x2001), Some(Piece::Later));
        assert_eq!(piece(0x0001), Some(Piece::Later), "the last fragment");
    }

    #[test]
    fn a_zero_total_length_runs_to_the_end() {
        let mut bytes = datagram();
        bytes[2..4].fill(0);
        bytes.extend_from_slice(&[0; 100]);
        assert_eq!(Ipv4::parse(&bytes, 0, false).map(|ip| ip.end), Some(128));
    }

    #[test]
    fn swaps_macs() {
        let mut frame: Vec<u8> = (0..14).collect();
        swap_macs(&mut frame);
        assert_eq!(frame, [6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 4, 5, 12, 13]);
    }
}
