//! nftables over netlink (`NFNL_SUBSYS_NFTABLES`), without the `nft` binary: an encoder for
//! batches of tables, chains and rules, a decoder for rule dumps with their counters, and a
//! minimal sender.
//!
//! Rules are built from the matches and statements firewalls and the kernel NAT path need
//! ([`Rule`]): `meta` (`iifname`, `oifname`, `l4proto`, `nfproto`), `payload` with `cmp`,
//! `range` and `bitwise` (addresses, prefixes, ports, ICMP types), `ct state`, `counter`,
//! verdicts, `reject`, `masquerade` and `snat`/`dnat`. Each encodes byte-for-byte as nft
//! 1.0.6 encodes the same command, which the unit tests check against what nft sent
//! (captured with strace in a scratch network namespace; the tests need no nft).
//!
//! [`apply`] and [`list_rules`] talk to the nftables of the calling thread's network
//! namespace: netlink sockets belong to the namespace of the thread that opens them. In a
//! user namespace that owns the network namespace, CAP_NET_ADMIN there is enough (rootless).

// Firewalls use part of it (network/firewall.rs); the NAT parts are for the kernel NAT path.
#![cfg_attr(not(test), allow(dead_code, unused_imports))]

mod attr;
mod batch;
mod dump;
mod expr;
mod rule;
mod socket;
mod sys;

#[cfg(test)]
mod kernel_tests;
#[cfg(test)]
mod tests;

use std::fmt;

pub(crate) use batch::{Batch, Request};
pub(crate) use dump::{Counter, RuleDump};
pub(crate) use expr::{CmpOp, Expr, NatKind, PayloadBase, Register, Reject, Verdict, nat_flags};
pub(crate) use rule::{Rule, ct_state, proto};
pub(crate) use socket::{Refused, apply, list_rules};

/// The family of a table (`NFPROTO_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    /// IPv4 and IPv6 (`inet`).
    Inet = 1,
    /// IPv4 (`ip`).
    Ipv4 = 2,
    /// IPv6 (`ip6`).
    Ipv6 = 10,
}

impl Family {
    fn from_number(number: u8) -> Option<Family> {
        match number {
            1 => Some(Family::Inet),
            2 => Some(Family::Ipv4),
            10 => Some(Family::Ipv6),
            _ => None,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Inet => "inet",
            Family::Ipv4 => "ip",
            Family::Ipv6 => "ip6",
        })
    }
}

/// A netfilter hook, where a base chain sees packets (`NF_INET_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hook {
    Prerouting = 0,
    Input = 1,
    Forward = 2,
    Output = 3,
    Postrouting = 4,
}

/// What a base chain is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChainType {
    Filter,
    Nat,
}

impl ChainType {
    fn name(self) -> &'static str {
        match self {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
        }
    }
}

/// What a base chain does with a packet no rule decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Policy {
    Drop = 0,
    Accept = 1,
}

/// What makes a chain a base chain: `{ type <kind> hook <hook> priority <priority>; policy
/// <policy>; }` (without a policy, the kernel's default: accept).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BaseChain {
    pub(crate) kind: ChainType,
    pub(crate) hook: Hook,
    pub(crate) priority: i32,
    pub(crate) policy: Option<Policy>,
}
