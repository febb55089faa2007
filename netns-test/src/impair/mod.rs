//! The machinery that applies link conditions (private): the backend choice and the middle
//! namespace ([`backend`]), the user-space engine and what it decides per packet, netem, and
//! packet captures.
//!
//! A link with conditions crosses a hidden namespace, the middle namespace, through two veth
//! pairs: `A:eth ⇄ middle:m<i>a` and `middle:m<i>b ⇄ B:eth`. Either the user-space engine,
//! which works on any kernel, forwards between the middle ends through AF_PACKET sockets
//! ([`packet`]), deciding each packet's fate with a seeded random generator and precise timers
//! ([`engine`], [`decide`], [`gso`] for offloaded frames) and writing captures ([`capture`]);
//! or, where the kernel has `sch_netem`, a bridge joins the middle ends with a netem qdisc on
//! each ([`netem`]). Conditions reach this module validated.
//!
//! `nat` is the user-space NAT translator, which the engine runs on a NAT router's outside
//! link.

pub(crate) mod backend;
mod capture;
mod decide;
mod engine;
mod gso;
#[cfg(test)]
pub(crate) mod lab;
pub(crate) mod nat;
mod neighbour;
mod netem;
pub(crate) mod packet;

#[cfg(test)]
mod tests;

pub(crate) use backend::{Backend, MIDDLE, network_seed};
pub(crate) use engine::monotonic_ns;
pub(crate) use netem::netem_available;
