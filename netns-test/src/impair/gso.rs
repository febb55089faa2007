//! Offloads: the `virtio_net_hdr` that AF_PACKET puts before each frame with
//! `PACKET_VNET_HDR`, completing partial checksums, and cutting GSO superframes into the wire
//! packets they stand for.
//!
//! Why: a veth hands its peer TCP frames whose checksum is only a pseudo-header sum
//! (`CHECKSUM_PARTIAL`) and, with TSO on, superframes of up to 64 KB. Read without the header,
//! such frames are broken on the other side (measured: no TCP crosses at all). With the header
//! the engine knows which is which: it passes them on untouched when nothing acts on single
//! packets (fast: one read and one write per 64 KB), and otherwise turns them into real wire
//! packets, each with complete checksums, so that loss, duplication and corruption act on
//! exactly what a wire would carry.

/// The size of `struct virtio_net_hdr`.
pub(crate) const VNET_LEN: usize = 10;

const NEEDS_CSUM: u8 = 1;
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
const GSO_UDP_L4: u8 = 5;
const GSO_ECN: u8 = 0x80;

/// `struct virtio_net_hdr`, in host byte order as AF_PACKET uses it on little-endian hosts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct VnetHdr {
    pub(crate) flags: u8,
    pub(crate) gso_type: u8,
    pub(crate) hdr_len: u16,
    pub(crate) gso_size: u16,
    pub(crate) csum_start: u16,
    pub(crate) csum_offset: u16,
}

impl VnetHdr {
    pub(crate) fn parse(bytes: &[u8; VNET_LEN]) -> Self {
        let word = |at: usize| u16::from_ne_bytes([bytes[at], bytes[at + 1]]);
        VnetHdr {
            flags: bytes[0],
            gso_type: bytes[1],
            hdr_len: word(2),
            gso_size: word(4),
            csum_start: word(6),
            csum_offset: word(8),
        }
    }

    #[cfg(test)]
    pub(crate) fn emit(&self) -> [u8; VNET_LEN] {
        let mut out = [0u8; VNET_LEN];
        out[0] = self.flags;
        out[1] = self.gso_type;
        out[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        out[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        out[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        out[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        out
    }

    /// A GSO superframe: many wire packets in one.
    pub(crate) fn is_gso(&self) -> bool {
        self.gso_type & !GSO_ECN != GSO_NONE && self.gso_size > 0
    }

    /// The checksum at `csum_start + csum_offset` still has to be completed.
    pub(crate) fn needs_csum(&self) -> bool {
        self.flags & NEEDS_CSUM != 0
    }
}

/// The wire packets a frame stands for, and their total size on the wire.
pub(crate) fn wire_size(hdr: &VnetHdr, frame: &[u8]) -> (u32, usize) {
    if !hdr.is_gso() {
        return (1, frame.len());
    }
    match Headers::parse(frame) {
        Some(headers) if headers.len < frame.len() => {
            let payload = frame.len() - headers.len;
            let count = payload.div_ceil(usize::from(hdr.gso_size));
            (count as u32, frame.len() + (count - 1) * headers.len)
        }
        _ => (1, frame.len()),
    }
}

/// Completes a partial checksum in place (what the kernel's `skb_checksum_help` does) and
/// returns whether it could. The field holds the pseudo-header sum; the sum over the rest of
/// the frame, folded and inverted, is the checksum.
pub(crate) fn complete_checksum(hdr: &VnetHdr, frame: &mut [u8]) -> bool {
    let start = usize::from(hdr.csum_start);
    let field = start + usize::from(hdr.csum_offset);
    if !hdr.needs_csum() || field + 2 > frame.len() {
        return false;
    }
    let sum = !fold(ones_sum(&frame[start..], 0));
    // 0 and 0xffff are the same number in ones' complement; UDP reserves 0 for "none".
    let sum = if sum == 0 { 0xffff } else { sum };
    frame[field..field + 2].copy_from_slice(&sum.to_be_bytes());
    true
}

/// Cuts a GSO superframe into wire packets with complete checksums, as the kernel's
/// `tcp_gso_segment`/`__udp_gso_segment` would. Returns `None` for kinds it does not know
/// (UFO, tunnels, IPv6 extension headers), which are then passed on whole.
pub(crate) fn segment(hdr: &VnetHdr, frame: &[u8]) -> Option<Vec<Vec<u8>>> {
    let headers = Headers::parse(frame)?;
    let mss = usize::from(hdr.gso_size);
    let kind = hdr.gso_type & !GSO_ECN;
    let tcp = match (kind, headers.l4_proto) {
        (GSO_TCPV4 | GSO_TCPV6, TCP) => true,
        (GSO_UDP_L4, UDP) => false,
        _ => return None,
    };
    if mss == 0 || headers.len >= frame.len() {
        return None;
    }
    let payload = &frame[headers.len..];
    let count = payload.len().div_ceil(mss);
    let mut segments = Vec::with_capacity(count);
    for (i, chunk) in payload.chunks(mss).enumerate() {
        let mut seg = Vec::with_capacity(VNET_LEN + headers.len + chunk.len());
        seg.extend_from_slice(&[0u8; VNET_LEN]);
        seg.extend_from_slice(&frame[..headers.len]);
        seg.extend_from_slice(chunk);
        let packet = &mut seg[VNET_LEN..];
        headers.fix_ip(packet, i as u16);
        let l4 = headers.l4;
        if tcp {
            let seq = u32::from_be_bytes(packet[l4 + 4..l4 + 8].try_into().ok()?);
            let seq = seq.wrapping_add((i * mss) as u32);
            packet[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
            if i + 1 < count {
                packet[l4 + 13] &= !(TCP_FIN | TCP_PSH);
            }
            if i > 0 {
                packet[l4 + 13] &= !TCP_CWR;
            }
            headers.l4_checksum(packet, l4 + 16);
        } else {
            let len = (packet.len() - l4) as u16;
            packet[l4 + 4..l4 + 6].copy_from_slice(&len.to_be_bytes());
            headers.l4_checksum(packet, l4 + 6);
        }
        segments.push(seg);
    }
    Some(segments)
}

const TCP: u8 = 6;
const UDP: u8 = 17;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// Where the headers of an Ethernet/IP/TCP-or-UDP frame are.
#[derive(Debug)]
struct Headers {
    l3: usize,
    v6: bool,
    l4: usize,
    l4_proto: u8,
    /// Ethernet, IP and L4 headers together.
    len: usize,
}

impl Headers {
    fn parse(frame: &[u8]) -> Option<Headers> {
        let mut l3 = 14;
        let mut ethertype = u16::from_be_bytes(frame.get(12..14)?.try_into().ok()?);
        if ethertype == 0x8100 {
            ethertype = u16::from_be_bytes(frame.get(16..18)?.try_into().ok()?);
            l3 = 18;
        }
        let (v6, l4, l4_proto) = match ethertype {
            0x0800 => {
                let ihl = usize::from(frame.get(l3)? & 0x0f) * 4;
                (false, l3 + ihl, *frame.get(l3 + 9)?)
            }
            0x86dd => (true, l3 + 40, *frame.get(l3 + 6)?),
            _ => return None,
        };
        let l4_len = match l4_proto {
            TCP => usize::from(frame.get(l4 + 12)? >> 4) * 4,
            UDP => 8,
            _ => return None,
        };
        let len = l4 + l4_len;
        (len <= frame.len()).then_some(Headers { l3, v6, l4, l4_proto, len })
    }

    /// Sets the IP length fields for this segment, and for IPv4 the ID (the original plus the
    /// segment's index, as the kernel does) and the header checksum.
    fn fix_ip(&self, packet: &mut [u8], index: u16) {
        let l3 = self.l3;
        if self.v6 {
            let len = (packet.len() - l3 - 40) as u16;
            packet[l3 + 4..l3 + 6].copy_from_slice(&len.to_be_bytes());
        } else {
            let len = (packet.len() - l3) as u16;
            packet[l3 + 2..l3 + 4].copy_from_slice(&len.to_be_bytes());
            let id = u16::from_be_bytes([packet[l3 + 4], packet[l3 + 5]]).wrapping_add(index);
            packet[l3 + 4..l3 + 6].copy_from_slice(&id.to_be_bytes());
            packet[l3 + 10..l3 + 12].fill(0);
            let sum = !fold(ones_sum(&packet[l3..self.l4], 0));
            packet[l3 + 10..l3 + 12].copy_from_slice(&sum.to_be_bytes());
        }
    }

    /// Computes the TCP or UDP checksum (stored at `field`) over the pseudo-header and the
    /// segment.
    fn l4_checksum(&self, packet: &mut [u8], field: usize) {
        packet[field..field + 2].fill(0);
        let l4_len = (packet.len() - self.l4) as u32;
        let l3 = self.l3;
        let addresses = if self.v6 { &packet[l3 + 8..l3 + 40] } else { &packet[l3 + 12..l3 + 20] };
        let pseudo = ones_sum(addresses, u32::from(self.l4_proto) + (l4_len >> 16) + (l4_len & 0xffff));
        let sum = !fold(ones_sum(&packet[self.l4..], pseudo));
        let sum = if sum == 0 && self.l4_proto == UDP { 0xffff } else { sum };
        packet[field..field + 2].copy_from_slice(&sum.to_be_bytes());
    }
}

/// The ones' complement sum of big-endian 16-bit words (an odd last byte padded with zero),
/// added to `initial`, not yet folded.
pub(crate) fn ones_sum(data: &[u8], initial: u32) -> u32 {
    let mut sum = u64::from(initial);
    let mut words = data.chunks_exact(2);
    for word in &mut words {
        sum += u64::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last) << 8;
    }
    while sum > 0xffff_ffff {
        sum = (sum & 0xffff_ffff) + (sum >> 32);
    }
    sum as u32
}

/// Folds a 32-bit sum to 16 bits.
pub(crate) fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests;
