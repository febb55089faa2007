//! Link conditions: delay, jitter, loss, rate, reorder, duplicate and corrupt, per direction,
//! seeded so that a run can be replayed.
//!
//! [`Conditions`] is the model, used in topologies and changed at runtime. The conditions are
//! applied by the user-space engine, which works on any kernel: the frames of an impaired
//! link cross a hidden "wire" namespace where an engine thread of the test process reads them
//! from one veth end and writes them to the other through AF_PACKET sockets, deciding each
//! packet's fate with a seeded random generator and precise timers. The engine sees every
//! frame, which gives packet capture for free. netem, where the kernel has it, is the other
//! path: `netem_available` says whether the kernel has it, `NetemOptions` encodes the
//! conditions for it and `apply_netem` installs it.

mod capture;
mod decide;
mod engine;
mod gso;
#[cfg(test)]
pub(crate) mod lab;
mod neighbour;
mod netem;
mod packet;

#[cfg(test)]
mod tests;

pub(crate) use engine::{Engine, WireId, WireSpec};
pub(crate) use netem::{NetemOptions, apply as apply_netem, netem_available};
pub(crate) use packet::Port;
#[cfg(test)]
pub(crate) use packet::set_tx_checksum;
