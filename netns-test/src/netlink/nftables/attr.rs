//! Netlink attributes: writing them (nested ones too) and walking them.

/// `NLA_F_NESTED`: the attribute holds attributes.
pub(crate) const NESTED: u16 = 0x8000;
/// The flags an attribute type may carry (`NLA_F_NESTED`, `NLA_F_NET_BYTEORDER`).
const TYPE_MASK: u16 = 0x3fff;
const HEADER_LEN: usize = 4;

/// `len` rounded up to netlink's 4-byte alignment.
pub(crate) fn align(len: usize) -> usize {
    len.next_multiple_of(4)
}

/// Appends attributes to a message being built.
pub(crate) struct Writer<'a> {
    buf: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut Vec<u8>) -> Writer<'a> {
        Writer { buf }
    }

    /// An attribute of type `kind` holding `payload`, padded with zeros to 4 bytes.
    pub(crate) fn bytes(&mut self, kind: u16, payload: &[u8]) {
        // Attributes come from names of at most 256 bytes and small numbers: a length that
        // does not fit 16 bits cannot be built from what the encoder accepts.
        let len = u16::try_from(HEADER_LEN + payload.len()).expect("an nftables attribute fits 64 KiB");
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.buf.resize(align(self.buf.len()), 0);
    }

    /// A NUL-terminated string.
    pub(crate) fn string(&mut self, kind: u16, value: &str) {
        let mut payload = Vec::with_capacity(value.len() + 1);
        payload.extend_from_slice(value.as_bytes());
        payload.push(0);
        self.bytes(kind, &payload);
    }

    /// A 32-bit number in network byte order, as nftables carries every number.
    pub(crate) fn be32(&mut self, kind: u16, value: u32) {
        self.bytes(kind, &value.to_be_bytes());
    }

    pub(crate) fn be64(&mut self, kind: u16, value: u64) {
        self.bytes(kind, &value.to_be_bytes());
    }

    /// A nested attribute whose content `fill` writes (flagged `NLA_F_NESTED`, as nft does).
    pub(crate) fn nested(&mut self, kind: u16, fill: impl FnOnce(&mut Writer<'_>)) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; HEADER_LEN]);
        fill(&mut Writer { buf: self.buf });
        let len = u16::try_from(self.buf.len() - start).expect("an nftables attribute fits 64 KiB");
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self.buf[start + 2..start + 4].copy_from_slice(&(kind | NESTED).to_ne_bytes());
    }
}

/// The attributes in `bytes`, as `(type without flags, payload)`; it stops at the first one
/// that does not fit, so that a damaged message yields what it holds and never panics.
pub(crate) fn attributes(bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.len() < HEADER_LEN {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & TYPE_MASK;
        if len < HEADER_LEN || len > rest.len() {
            rest = &[];
            return None;
        }
        let payload = &rest[HEADER_LEN..len];
        rest = rest.get(align(len)..).unwrap_or(&[]);
        Some((kind, payload))
    })
}

/// The payload of the first attribute of type `kind`.
pub(crate) fn find(bytes: &[u8], kind: u16) -> Option<&[u8]> {
    attributes(bytes).find(|(k, _)| *k == kind).map(|(_, payload)| payload)
}

/// A NUL-terminated (or unterminated) string payload.
pub(crate) fn string(payload: &[u8]) -> String {
    let end = payload.iter().position(|&b| b == 0).unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

pub(crate) fn be32(payload: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(payload.get(..4)?.try_into().ok()?))
}

pub(crate) fn be64(payload: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(payload.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_pads_and_nests() {
        let mut buf = Vec::new();
        let mut writer = Writer::new(&mut buf);
        writer.string(1, "t");
        writer.nested(4, |inner| {
            inner.be32(1, 2);
            inner.be32(2, 0);
        });
        assert_eq!(
            buf,
            [
                0x06, 0x00, 0x01, 0x00, b't', 0x00, 0x00, 0x00, 0x14, 0x00, 0x04, 0x80, 0x08, 0x00, 0x01,
                0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00
            ]
        );
        let walked: Vec<(u16, usize)> =
            attributes(&buf).map(|(kind, payload)| (kind, payload.len())).collect();
        assert_eq!(walked, [(1, 2), (4, 16)]);
        assert_eq!(find(&buf, 4).and_then(|hook| find(hook, 1)).and_then(be32), Some(2));
    }

    #[test]
    fn a_damaged_list_yields_what_fits() {
        let mut buf = Vec::new();
        Writer::new(&mut buf).be32(1, 7);
        buf.extend_from_slice(&[0x40, 0x00, 0x02, 0x00, 0x01]);
        assert_eq!(attributes(&buf).count(), 1);
        for len in 0..buf.len() {
            let _ = attributes(&buf[..len]).count();
        }
        assert_eq!(attributes(&[0x00, 0x00, 0x01, 0x00]).count(), 0, "a zero length ends the walk");
    }
}
