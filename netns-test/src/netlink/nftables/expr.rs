//! nftables expressions, as the kernel's virtual machine takes them: loads into registers,
//! comparisons, and statements. Each encodes exactly as nft 1.0.6 encodes it.

use super::attr::Writer;
use super::sys::*;

/// A register. nft uses the four 16-byte registers (1 to 4) and the verdict register (0);
/// so does this encoder, which keeps its output byte-for-byte nft's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Register {
    Verdict = 0,
    R1 = 1,
    R2 = 2,
    R3 = 3,
}

/// What a rule does when it matches, or where it sends the packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Accept,
    Drop,
    /// On to the next rule (what a rule without a verdict does).
    Continue,
    /// Back to the calling chain.
    Return,
    /// To a regular chain, and back after it.
    Jump(String),
    /// To a regular chain, not coming back.
    Goto(String),
}

impl Verdict {
    fn code(&self) -> i32 {
        match self {
            Verdict::Accept => NF_ACCEPT,
            Verdict::Drop => NF_DROP,
            Verdict::Continue => NFT_CONTINUE,
            Verdict::Return => NFT_RETURN,
            Verdict::Jump(_) => NFT_JUMP,
            Verdict::Goto(_) => NFT_GOTO,
        }
    }

    /// The verdict of a code (and target chain) read back from the kernel.
    pub(crate) fn from_code(code: i32, chain: Option<String>) -> Option<Verdict> {
        Some(match (code, chain) {
            (NF_ACCEPT, _) => Verdict::Accept,
            (NF_DROP, _) => Verdict::Drop,
            (NFT_CONTINUE, _) => Verdict::Continue,
            (NFT_RETURN, _) => Verdict::Return,
            (NFT_JUMP, Some(chain)) => Verdict::Jump(chain),
            (NFT_GOTO, Some(chain)) => Verdict::Goto(chain),
            _ => return None,
        })
    }
}

/// Where a payload load starts counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PayloadBase {
    Network = 1,
    Transport = 2,
}

/// A comparison of a register with a constant (the ones the rules use; the kernel also has
/// `<` and `>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq = 0,
    Neq = 1,
    Lte = 3,
    Gte = 5,
}

/// What to answer a rejected packet with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reject {
    /// A TCP RST (`reject with tcp reset`).
    TcpReset,
    /// An ICMPv4 destination unreachable of this code (`reject with icmp type ...`; 3 is port
    /// unreachable, 13 administratively prohibited).
    Icmp(u8),
    /// An ICMPv6 destination unreachable of this code (`reject with icmpv6 type ...`; 4 is
    /// port unreachable, 1 administratively prohibited).
    Icmpv6(u8),
    /// The ICMP or ICMPv6 message that fits the packet's family (`reject with icmpx type
    /// ...`; the codes are nft's: 0 no route, 1 port unreachable, 2 host unreachable, 3
    /// administratively prohibited). The form the `inet` family needs.
    Icmpx(u8),
}

/// NAT range flags (`NF_NAT_RANGE_*`).
pub(crate) mod nat_flags {
    /// A port range is given.
    pub(crate) const PROTO_SPECIFIED: u32 = super::NF_NAT_RANGE_PROTO_SPECIFIED;
    /// Ports are picked at random in the range (`random`).
    pub(crate) const PROTO_RANDOM: u32 = 0x4;
    /// A client keeps its address across connections (`persistent`).
    pub(crate) const PERSISTENT: u32 = 0x8;
    /// Ports are picked at random always, even the first (`fully-random`).
    pub(crate) const PROTO_RANDOM_FULLY: u32 = 0x10;
}

/// Source or destination NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NatKind {
    Snat = 0,
    Dnat = 1,
}

/// One expression of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expr {
    /// Loads packet metadata (`meta iifname`, `meta l4proto`...): one of the `NFT_META_*` keys.
    Meta {
        key: u32,
        dreg: Register,
    },
    /// Loads `len` bytes at `offset` from `base`.
    Payload {
        base: PayloadBase,
        offset: u32,
        len: u32,
        dreg: Register,
    },
    /// Goes on only if the register compares so with `data`.
    Cmp {
        sreg: Register,
        op: CmpOp,
        data: Vec<u8>,
    },
    /// Goes on only if the register is (`eq`) or is not (`neq`) within `from..=to`.
    Range {
        sreg: Register,
        negated: bool,
        from: Vec<u8>,
        to: Vec<u8>,
    },
    /// `dreg = (sreg & mask) ^ xor`, over `mask.len()` bytes.
    Bitwise {
        sreg: Register,
        dreg: Register,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    /// Loads conntrack data: one of the `NFT_CT_*` keys.
    Ct {
        key: u32,
        dreg: Register,
    },
    /// Counts packets and bytes.
    Counter,
    /// Loads a constant into a register.
    Immediate {
        dreg: Register,
        data: Vec<u8>,
    },
    /// Ends the rule with a verdict.
    Verdict(Verdict),
    Reject(Reject),
    /// Masquerade; ports from the registers, if given.
    Masq {
        flags: u32,
        ports: Option<(Register, Register)>,
    },
    /// SNAT or DNAT of `family` to the addresses and ports in the registers.
    Nat {
        kind: NatKind,
        family: u32,
        addr: Option<(Register, Option<Register>)>,
        ports: Option<(Register, Option<Register>)>,
        flags: Option<u32>,
    },
}

impl Expr {
    fn name(&self) -> &'static str {
        match self {
            Expr::Meta { .. } => "meta",
            Expr::Payload { .. } => "payload",
            Expr::Cmp { .. } => "cmp",
            Expr::Range { .. } => "range",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Ct { .. } => "ct",
            Expr::Counter => "counter",
            Expr::Immediate { .. } | Expr::Verdict(_) => "immediate",
            Expr::Reject(_) => "reject",
            Expr::Masq { .. } => "masq",
            Expr::Nat { .. } => "nat",
        }
    }

    /// Appends the expression as an `NFTA_LIST_ELEM`.
    pub(crate) fn encode(&self, out: &mut Writer<'_>) {
        out.nested(NFTA_LIST_ELEM, |elem| {
            elem.string(NFTA_EXPR_NAME, self.name());
            elem.nested(NFTA_EXPR_DATA, |data| self.encode_data(data));
        });
    }

    fn encode_data(&self, out: &mut Writer<'_>) {
        let reg = |r: &Register| *r as u32;
        match self {
            // nft puts the key first.
            Expr::Meta { key, dreg } => {
                out.be32(NFTA_META_KEY, *key);
                out.be32(NFTA_META_DREG, reg(dreg));
            }
            Expr::Ct { key, dreg } => {
                out.be32(NFTA_CT_KEY, *key);
                out.be32(NFTA_CT_DREG, reg(dreg));
            }
            Expr::Payload { base, offset, len, dreg } => {
                out.be32(NFTA_PAYLOAD_DREG, reg(dreg));
                out.be32(NFTA_PAYLOAD_BASE, *base as u32);
                out.be32(NFTA_PAYLOAD_OFFSET, *offset);
                out.be32(NFTA_PAYLOAD_LEN, *len);
            }
            Expr::Cmp { sreg, op, data } => {
                out.be32(NFTA_CMP_SREG, reg(sreg));
                out.be32(NFTA_CMP_OP, *op as u32);
                value(out, NFTA_CMP_DATA, data);
            }
            Expr::Range { sreg, negated, from, to } => {
                out.be32(NFTA_RANGE_SREG, reg(sreg));
                out.be32(NFTA_RANGE_OP, u32::from(*negated));
                value(out, NFTA_RANGE_FROM_DATA, from);
                value(out, NFTA_RANGE_TO_DATA, to);
            }
            Expr::Bitwise { sreg, dreg, mask, xor } => {
                out.be32(NFTA_BITWISE_SREG, reg(sreg));
                out.be32(NFTA_BITWISE_DREG, reg(dreg));
                out.be32(NFTA_BITWISE_LEN, mask.len() as u32);
                value(out, NFTA_BITWISE_MASK, mask);
                value(out, NFTA_BITWISE_XOR, xor);
            }
            Expr::Counter => {}
            Expr::Immediate { dreg, data } => {
                out.be32(NFTA_IMMEDIATE_DREG, reg(dreg));
                value(out, NFTA_IMMEDIATE_DATA, data);
            }
            Expr::Verdict(verdict) => {
                out.be32(NFTA_IMMEDIATE_DREG, Register::Verdict as u32);
                out.nested(NFTA_IMMEDIATE_DATA, |data| {
                    data.nested(NFTA_DATA_VERDICT, |v| {
                        v.be32(NFTA_VERDICT_CODE, verdict.code() as u32);
                        if let Verdict::Jump(chain) | Verdict::Goto(chain) = verdict {
                            v.string(NFTA_VERDICT_CHAIN, chain);
                        }
                    });
                });
            }
            Expr::Reject(reject) => {
                let (kind, code) = match *reject {
                    Reject::TcpReset => (NFT_REJECT_TCP_RST, 0),
                    Reject::Icmp(code) | Reject::Icmpv6(code) => (NFT_REJECT_ICMP_UNREACH, code),
                    Reject::Icmpx(code) => (NFT_REJECT_ICMPX_UNREACH, code),
                };
                out.be32(NFTA_REJECT_TYPE, kind);
                out.bytes(NFTA_REJECT_ICMP_CODE, &[code]);
            }
            Expr::Masq { flags, ports } => {
                if *flags != 0 {
                    out.be32(NFTA_MASQ_FLAGS, *flags);
                }
                if let Some((min, max)) = ports {
                    out.be32(NFTA_MASQ_REG_PROTO_MIN, reg(min));
                    out.be32(NFTA_MASQ_REG_PROTO_MAX, reg(max));
                }
            }
            Expr::Nat { kind, family, addr, ports, flags } => {
                out.be32(NFTA_NAT_TYPE, *kind as u32);
                out.be32(NFTA_NAT_FAMILY, *family);
                if let Some((min, max)) = addr {
                    out.be32(NFTA_NAT_REG_ADDR_MIN, reg(min));
                    if let Some(max) = max {
                        out.be32(NFTA_NAT_REG_ADDR_MAX, reg(max));
                    }
                }
                if let Some((min, max)) = ports {
                    out.be32(NFTA_NAT_REG_PROTO_MIN, reg(min));
                    if let Some(max) = max {
                        out.be32(NFTA_NAT_REG_PROTO_MAX, reg(max));
                    }
                }
                if let Some(flags) = flags {
                    out.be32(NFTA_NAT_FLAGS, *flags);
                }
            }
        }
    }
}

/// A constant: nested `NFTA_DATA_VALUE`.
fn value(out: &mut Writer<'_>, kind: u16, data: &[u8]) {
    out.nested(kind, |nested| nested.bytes(NFTA_DATA_VALUE, data));
}
