//! Echo identifiers, unique among the pingers alive in this process.
//!
//! Raw ICMP sockets receive every echo reply that reaches their node, so a pinger recognises
//! its own replies by the identifier field alone. Two pingers of this process never hold the
//! same identifier at once, whichever nodes they run in. (iputils picks a random identifier,
//! so a concurrent iputils `ping` in the same node collides with one of ours with probability
//! 1/65536 per pair; the identifiers handed out here start at a time-derived offset for the
//! same reason.)

use std::sync::Mutex;

struct Table {
    in_use: [u64; 1024],
    next: u16,
    seeded: bool,
}

static TABLE: Mutex<Table> = Mutex::new(Table { in_use: [0; 1024], next: 0, seeded: false });

/// An identifier, given back when dropped.
#[derive(Debug)]
pub(crate) struct Ident(u16);

impl Ident {
    /// Takes a free identifier, or `None` when all 65536 are in use.
    pub(crate) fn take() -> Option<Ident> {
        let mut table = TABLE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !table.seeded {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.subsec_nanos());
            table.next = (nanos ^ std::process::id()) as u16;
            table.seeded = true;
        }
        for _ in 0..=u16::MAX {
            let candidate = table.next;
            table.next = table.next.wrapping_add(1);
            let (word, bit) = (usize::from(candidate / 64), candidate % 64);
            if table.in_use[word] & (1 << bit) == 0 {
                table.in_use[word] |= 1 << bit;
                return Some(Ident(candidate));
            }
        }
        None
    }

    pub(crate) fn get(&self) -> u16 {
        self.0
    }
}

impl Drop for Ident {
    fn drop(&mut self) {
        let mut table = TABLE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (word, bit) = (usize::from(self.0 / 64), self.0 % 64);
        table.in_use[word] &= !(1 << bit);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn identifiers_are_unique_while_held_and_reused_after() {
        // Other unit tests may hold a few identifiers meanwhile; all the rest are taken here.
        let held: Vec<Ident> = std::iter::from_fn(Ident::take).collect();
        assert!(held.len() > 65_000, "only {} identifiers were free", held.len());
        let distinct: HashSet<u16> = held.iter().map(Ident::get).collect();
        assert_eq!(distinct.len(), held.len(), "an identifier was handed out twice");
        assert!(Ident::take().is_none(), "all identifiers are in use");
        let first = held[0].get();
        drop(held);
        let again: Vec<Ident> = std::iter::from_fn(Ident::take).take(65_536).collect();
        assert!(again.iter().any(|ident| ident.get() == first), "a released identifier is handed out again");
    }
}
