//! Rules, built from the matches and statements the firewall and the kernel NAT path need,
//! each expanded into the expressions nft 1.0.6 makes of it (with the same implicit
//! dependencies: `ip saddr` in an `inet` table first checks `meta nfproto ipv4`, `udp dport`
//! first checks `meta l4proto udp`).

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use ipnet::{Ipv4Net, Ipv6Net};

use super::Family;
use super::expr::{CmpOp, Expr, NatKind, PayloadBase, Register, Reject, Verdict, nat_flags};
use super::sys::{
    COMMENT_MAXLEN, IFNAMSIZ, NFT_CT_STATE, NFT_META_IIFNAME, NFT_META_L4PROTO, NFT_META_NFPROTO,
    NFT_META_OIFNAME,
};

/// Conntrack states, for [`Rule::ct_state`] (`NF_CT_STATE_*_BIT`).
pub(crate) mod ct_state {
    pub(crate) const INVALID: u32 = 1;
    pub(crate) const ESTABLISHED: u32 = 2;
    pub(crate) const RELATED: u32 = 4;
    pub(crate) const NEW: u32 = 8;
    pub(crate) const UNTRACKED: u32 = 64;
}

/// IP protocol numbers the matches take.
pub(crate) mod proto {
    pub(crate) const ICMP: u8 = 1;
    pub(crate) const TCP: u8 = 6;
    pub(crate) const UDP: u8 = 17;
    pub(crate) const ICMPV6: u8 = 58;
}

/// One rule for a chain: its expressions in order, and a comment to find it by in a dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) family: Family,
    pub(crate) table: String,
    pub(crate) chain: String,
    pub(crate) exprs: Vec<Expr>,
    pub(crate) comment: Option<String>,
    /// The first argument the kernel would refuse (an interface name too long...), reported
    /// when the rule is added to a batch.
    pub(crate) invalid: Option<String>,
}

impl Rule {
    /// An empty rule (it matches everything and does nothing) for `chain` of `table`.
    pub(crate) fn new(family: Family, table: &str, chain: &str) -> Rule {
        Rule {
            family,
            table: table.to_owned(),
            chain: chain.to_owned(),
            exprs: Vec::new(),
            comment: None,
            invalid: None,
        }
    }

    /// Appends an expression as is.
    pub(crate) fn expr(mut self, expr: Expr) -> Rule {
        self.exprs.push(expr);
        self
    }

    fn refuse(mut self, why: String) -> Rule {
        self.invalid.get_or_insert(why);
        self
    }

    /// `meta iifname "<name>"`: the packet came in through this interface.
    pub(crate) fn iifname(self, name: &str) -> Rule {
        self.ifname(NFT_META_IIFNAME, name)
    }

    /// `meta oifname "<name>"`: the packet goes out through this interface.
    pub(crate) fn oifname(self, name: &str) -> Rule {
        self.ifname(NFT_META_OIFNAME, name)
    }

    fn ifname(self, key: u32, name: &str) -> Rule {
        if name.is_empty() || name.len() >= IFNAMSIZ || name.contains('\0') {
            return self.refuse(format!("interface name {name:?} (1 to {} bytes, no NUL)", IFNAMSIZ - 1));
        }
        // Compared over the whole IFNAMSIZ, NUL-padded: an exact match.
        let mut data = name.as_bytes().to_vec();
        data.resize(IFNAMSIZ, 0);
        self.expr(Expr::Meta { key, dreg: Register::R1 }).expr(Expr::Cmp {
            sreg: Register::R1,
            op: CmpOp::Eq,
            data,
        })
    }

    /// `meta nfproto ipv4|ipv6`: the packet's family (in an `inet` table).
    pub(crate) fn nfproto(self, family: Family) -> Rule {
        self.expr(Expr::Meta { key: NFT_META_NFPROTO, dreg: Register::R1 }).expr(Expr::Cmp {
            sreg: Register::R1,
            op: CmpOp::Eq,
            data: vec![family as u8],
        })
    }

    /// `meta l4proto <protocol>`: the transport protocol, after any extension headers.
    pub(crate) fn l4proto(self, protocol: u8) -> Rule {
        self.expr(Expr::Meta { key: NFT_META_L4PROTO, dreg: Register::R1 }).expr(Expr::Cmp {
            sreg: Register::R1,
            op: CmpOp::Eq,
            data: vec![protocol],
        })
    }

    /// In an `inet` table, `meta nfproto <family>`, which IPv4- or IPv6-only matches need.
    fn family_dependency(self, family: Family) -> Rule {
        if self.family == Family::Inet { self.nfproto(family) } else { self }
    }

    /// `ip saddr <net>`.
    pub(crate) fn ip_saddr(self, net: Ipv4Net) -> Rule {
        self.family_dependency(Family::Ipv4).prefix(12, &net.network().octets(), net.prefix_len())
    }

    /// `ip daddr <net>`.
    pub(crate) fn ip_daddr(self, net: Ipv4Net) -> Rule {
        self.family_dependency(Family::Ipv4).prefix(16, &net.network().octets(), net.prefix_len())
    }

    /// `ip6 saddr <net>`.
    pub(crate) fn ip6_saddr(self, net: Ipv6Net) -> Rule {
        self.family_dependency(Family::Ipv6).prefix(8, &net.network().octets(), net.prefix_len())
    }

    /// `ip6 daddr <net>`.
    pub(crate) fn ip6_daddr(self, net: Ipv6Net) -> Rule {
        self.family_dependency(Family::Ipv6).prefix(24, &net.network().octets(), net.prefix_len())
    }

    /// An address at `offset` of the network header within the prefix `network/len`, as nft
    /// matches it: a whole-byte prefix loads only its bytes; another loads the whole address
    /// and masks it. A zero-length prefix matches every address and adds nothing.
    fn prefix(self, offset: u32, network: &[u8], len: u8) -> Rule {
        let len = usize::from(len);
        if len == 0 {
            return self;
        }
        let load = |bytes: usize| Expr::Payload {
            base: PayloadBase::Network,
            offset,
            len: bytes as u32,
            dreg: Register::R1,
        };
        if len % 8 == 0 {
            let bytes = len / 8;
            return self.expr(load(bytes)).expr(Expr::Cmp {
                sreg: Register::R1,
                op: CmpOp::Eq,
                data: network[..bytes].to_vec(),
            });
        }
        let mask: Vec<u8> = (0..network.len())
            .map(|i| {
                let bits = len.saturating_sub(8 * i).min(8);
                (0xff00u16 >> bits) as u8
            })
            .collect();
        let xor = vec![0; network.len()];
        self.expr(load(network.len()))
            .expr(Expr::Bitwise { sreg: Register::R1, dreg: Register::R1, mask, xor })
            .expr(Expr::Cmp { sreg: Register::R1, op: CmpOp::Eq, data: network.to_vec() })
    }

    /// `<tcp|udp> sport <ports>`: one port, or a range.
    pub(crate) fn sport(self, protocol: u8, ports: RangeInclusive<u16>) -> Rule {
        self.port(protocol, 0, ports)
    }

    /// `<tcp|udp> dport <ports>`: one port, or a range.
    pub(crate) fn dport(self, protocol: u8, ports: RangeInclusive<u16>) -> Rule {
        self.port(protocol, 2, ports)
    }

    /// `<tcp|udp> dport != <first>-<last>`.
    pub(crate) fn dport_not(self, protocol: u8, ports: RangeInclusive<u16>) -> Rule {
        self.l4proto(protocol).expr(transport(2, 2)).expr(Expr::Range {
            sreg: Register::R1,
            negated: true,
            from: ports.start().to_be_bytes().to_vec(),
            to: ports.end().to_be_bytes().to_vec(),
        })
    }

    fn port(self, protocol: u8, offset: u32, ports: RangeInclusive<u16>) -> Rule {
        let (first, last) = (*ports.start(), *ports.end());
        if first > last {
            return self.refuse(format!("port range {first}-{last} (inverted)"));
        }
        let cmp = |op, port: u16| Expr::Cmp { sreg: Register::R1, op, data: port.to_be_bytes().to_vec() };
        let rule = self.l4proto(protocol).expr(transport(offset, 2));
        if first == last {
            rule.expr(cmp(CmpOp::Eq, first))
        } else {
            rule.expr(cmp(CmpOp::Gte, first)).expr(cmp(CmpOp::Lte, last))
        }
    }

    /// `ct state <states>`: the connection is in one of `states` (a mask of [`ct_state`]).
    pub(crate) fn ct_state(self, states: u32) -> Rule {
        // Conntrack state bits are in host byte order in the register.
        self.expr(Expr::Ct { key: NFT_CT_STATE, dreg: Register::R1 })
            .expr(Expr::Bitwise {
                sreg: Register::R1,
                dreg: Register::R1,
                mask: states.to_ne_bytes().to_vec(),
                xor: vec![0; 4],
            })
            .expr(Expr::Cmp { sreg: Register::R1, op: CmpOp::Neq, data: vec![0; 4] })
    }

    /// `icmp type <kind> [icmp code <code>]`.
    pub(crate) fn icmp(self, kind: u8, code: Option<u8>) -> Rule {
        self.family_dependency(Family::Ipv4).l4proto(proto::ICMP).icmp_header(kind, code)
    }

    /// `icmpv6 type <kind> [icmpv6 code <code>]`.
    pub(crate) fn icmpv6(self, kind: u8, code: Option<u8>) -> Rule {
        self.family_dependency(Family::Ipv6).l4proto(proto::ICMPV6).icmp_header(kind, code)
    }

    fn icmp_header(self, kind: u8, code: Option<u8>) -> Rule {
        let data = match code {
            Some(code) => vec![kind, code],
            None => vec![kind],
        };
        self.expr(transport(0, data.len() as u32)).expr(Expr::Cmp { sreg: Register::R1, op: CmpOp::Eq, data })
    }

    /// `counter`.
    pub(crate) fn counter(self) -> Rule {
        self.expr(Expr::Counter)
    }

    /// `accept`, `drop`, `jump <chain>`...
    pub(crate) fn verdict(self, verdict: Verdict) -> Rule {
        self.expr(Expr::Verdict(verdict))
    }

    /// `reject with ...`.
    pub(crate) fn reject(self, reject: Reject) -> Rule {
        self.expr(Expr::Reject(reject))
    }

    /// `masquerade [to :<ports>] [<flags>]`, `flags` a mask of [`nat_flags`] (`random`,
    /// `persistent`, `fully-random`).
    pub(crate) fn masquerade(self, ports: Option<RangeInclusive<u16>>, flags: u32) -> Rule {
        match ports {
            None => self.expr(Expr::Masq { flags, ports: None }),
            Some(ports) => self.port_registers(&ports, Register::R1).expr(Expr::Masq {
                flags: flags | nat_flags::PROTO_SPECIFIED,
                ports: Some((Register::R1, Register::R2)),
            }),
        }
    }

    /// `snat to <addr>[:<ports>]` (IPv4).
    pub(crate) fn snat(self, addr: Ipv4Addr, ports: Option<RangeInclusive<u16>>) -> Rule {
        let rule = self.expr(immediate(Register::R1, addr.octets().to_vec()));
        match ports {
            None => rule.expr(Expr::Nat {
                kind: NatKind::Snat,
                family: Family::Ipv4 as u32,
                addr: Some((Register::R1, None)),
                ports: None,
                flags: None,
            }),
            Some(ports) => rule.port_registers(&ports, Register::R2).expr(Expr::Nat {
                kind: NatKind::Snat,
                family: Family::Ipv4 as u32,
                addr: Some((Register::R1, None)),
                ports: Some((Register::R2, Some(Register::R3))),
                flags: Some(nat_flags::PROTO_SPECIFIED),
            }),
        }
    }

    /// `dnat to <addr>[:<port>]` (IPv4).
    pub(crate) fn dnat(self, addr: Ipv4Addr, port: Option<u16>) -> Rule {
        let rule = self.expr(immediate(Register::R1, addr.octets().to_vec()));
        match port {
            None => rule.expr(Expr::Nat {
                kind: NatKind::Dnat,
                family: Family::Ipv4 as u32,
                addr: Some((Register::R1, None)),
                ports: None,
                flags: None,
            }),
            Some(port) => rule.expr(immediate(Register::R2, port.to_be_bytes().to_vec())).expr(Expr::Nat {
                kind: NatKind::Dnat,
                family: Family::Ipv4 as u32,
                addr: Some((Register::R1, None)),
                ports: Some((Register::R2, None)),
                flags: Some(nat_flags::PROTO_SPECIFIED),
            }),
        }
    }

    /// Loads the first and last port of `ports` into `first` and the register after it.
    fn port_registers(self, ports: &RangeInclusive<u16>, first: Register) -> Rule {
        let (low, high) = (*ports.start(), *ports.end());
        if low > high || low == 0 {
            return self.refuse(format!("port range {low}-{high} (inverted, or starting at 0)"));
        }
        let second = if first == Register::R1 { Register::R2 } else { Register::R3 };
        self.expr(immediate(first, low.to_be_bytes().to_vec()))
            .expr(immediate(second, high.to_be_bytes().to_vec()))
    }

    /// `comment "<text>"`, kept by the kernel and shown in dumps.
    pub(crate) fn comment(mut self, text: &str) -> Rule {
        if text.len() >= COMMENT_MAXLEN || text.contains('\0') {
            return self.refuse(format!("comment {text:?} (below {COMMENT_MAXLEN} bytes, no NUL)"));
        }
        self.comment = Some(text.to_owned());
        self
    }
}

/// A load of `len` bytes at `offset` of the transport header.
fn transport(offset: u32, len: u32) -> Expr {
    Expr::Payload { base: PayloadBase::Transport, offset, len, dreg: Register::R1 }
}

fn immediate(dreg: Register, data: Vec<u8>) -> Expr {
    Expr::Immediate { dreg, data }
}
