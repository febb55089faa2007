//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! The translator never recomputes a checksum over a whole packet: it accumulates, per
//! checksum, the 16-bit words it changed under that checksum's coverage ([`Delta`]) and
//! applies them at the end. That is exact (RFC 1624 eqn. 3 has none of the corner cases of
//! eqn. 2), costs the same for a 64 KB superframe as for a 64-byte probe, and works on a
//! truncated packet such as the one embedded in an ICMP error.

use std::net::Ipv4Addr;

/// The one's complement sum of `bytes` read as big-endian 16-bit words (an odd last byte is
/// padded with zero), not yet folded.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn sum(bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    let mut total: u64 = chunks.by_ref().map(|word| u64::from(u16::from_be_bytes([word[0], word[1]]))).sum();
    if let [last] = chunks.remainder() {
        total += u64::from(*last) << 8;
    }
    fold64(total)
}

/// Folds a 64-bit one's complement sum to 32 bits that still fit a few more additions.
#[cfg_attr(not(test), allow(dead_code))]
fn fold64(mut total: u64) -> u32 {
    while total >> 16 != 0 {
        total = (total & 0xffff) + (total >> 16);
    }
    total as u32
}

/// Folds a one's complement sum to 16 bits (end-around carry).
pub(crate) fn fold(mut total: u32) -> u16 {
    while total >> 16 != 0 {
        total = (total & 0xffff) + (total >> 16);
    }
    total as u16
}

/// The 16-bit words a checksum's coverage lost and gained, as the one's complement sum of
/// `~old + new` for each changed word (RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Delta(u32);

impl Delta {
    /// Records that a covered word changed from `old` to `new`.
    pub(crate) fn word(&mut self, old: u16, new: u16) {
        self.0 = u32::from(fold(self.0 + u32::from(!old) + u32::from(new)));
    }

    /// Records that a covered IPv4 address (two words) changed.
    pub(crate) fn addr(&mut self, old: Ipv4Addr, new: Ipv4Addr) {
        let (old, new) = (old.octets(), new.octets());
        self.word(u16::from_be_bytes([old[0], old[1]]), u16::from_be_bytes([new[0], new[1]]));
        self.word(u16::from_be_bytes([old[2], old[3]]), u16::from_be_bytes([new[2], new[3]]));
    }

    /// Adds the changes recorded in `other`.
    pub(crate) fn add(&mut self, other: Delta) {
        self.0 = u32::from(fold(self.0 + other.0));
    }

    /// The checksum `checksum` (a complemented sum, as carried in a header) once the recorded
    /// changes are made.
    pub(crate) fn apply(self, checksum: u16) -> u16 {
        !fold(u32::from(!checksum) + self.0)
    }

    /// A field holding a sum that is not complemented (the pseudo-header sum that a
    /// `CHECKSUM_PARTIAL` packet carries in its checksum field) once the changes are made.
    pub(crate) fn apply_to_sum(self, partial: u16) -> u16 {
        fold(u32::from(partial) + self.0)
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::{Rng, SeedableRng};

    use super::*;

    /// The checksum of `bytes` as a sender computes it.
    fn checksum(bytes: &[u8]) -> u16 {
        !fold(sum(bytes))
    }

    #[test]
    fn rfc_1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        assert_eq!(fold(sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])), 0xddf2);
        // An odd length pads the last byte on the right.
        assert_eq!(fold(sum(&[0x00, 0x01, 0xf2])), 0xf201);
    }

    #[test]
    fn rfc_1624_example_gives_0000_not_ffff() {
        // RFC 1624 section 3: a header whose sum is 0xcd7a has checksum 0x3285; a word changes
        // from 0x5555 to 0x3285 and the new checksum is 0x0000 (eqn. 2 wrongly gives 0xffff).
        let mut delta = Delta::default();
        delta.word(0x5555, 0x3285);
        assert_eq!(delta.apply(0xdd2f), 0x0000);
    }

    #[test]
    fn incremental_updates_equal_recomputation() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..2000 {
            let len = 2 * (1 + (rng.next_u32() % 40) as usize);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u32() as u8).collect();
            let before = checksum(&bytes);
            let mut delta = Delta::default();
            for _ in 0..1 + rng.next_u32() % 4 {
                let at = 2 * (rng.next_u32() as usize % (len / 2));
                let old = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
                let new = rng.next_u32() as u16;
                bytes[at..at + 2].copy_from_slice(&new.to_be_bytes());
                delta.word(old, new);
            }
            let after = checksum(&bytes);
            let updated = delta.apply(before);
            // 0x0000 and 0xffff are the same number in one's complement; both verify.
            assert!(
                updated == after || (updated | after) == 0xffff && (updated & after) == 0,
                "{updated:#x} vs {after:#x}"
            );
        }
    }

    #[test]
    fn partial_sums_follow_their_words() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        for _ in 0..2000 {
            let mut words: Vec<u16> = (0..6).map(|_| rng.next_u32() as u16).collect();
            let bytes = |words: &[u16]| words.iter().flat_map(|w| w.to_be_bytes()).collect::<Vec<u8>>();
            let before = fold(sum(&bytes(&words)));
            let at = rng.next_u32() as usize % words.len();
            let new = rng.next_u32() as u16;
            let mut delta = Delta::default();
            delta.word(words[at], new);
            words[at] = new;
            let after = fold(sum(&bytes(&words)));
            let updated = delta.apply_to_sum(before);
            assert!(
                updated == after || (updated | after) == 0xffff && (updated & after) == 0,
                "{updated:#x} vs {after:#x}"
            );
        }
    }
}
