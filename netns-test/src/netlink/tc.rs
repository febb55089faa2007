//! tc in-process: the `clsact` qdisc, and ingress filters running classic BPF programs
//! (cuts and partitions drop frames with them).

use rtnetlink::packet_core::{DefaultNla, NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::tc::{TcAttribute, TcHandle, TcMessage, TcOption};

use super::{At, existing_is_fine};
use crate::error::Result;

/// The ingress hook of the `clsact` qdisc, where link cuts and partitions install their
/// filters.
const CLSACT_INGRESS: TcHandle = TcHandle { major: 0xFFFF, minor: TcHandle::MIN_INGRESS };
/// `TCA_BPF_OPS_LEN`, `TCA_BPF_OPS`, `TCA_BPF_FLAGS` of `linux/pkt_cls.h`.
const TCA_BPF_OPS_LEN: u16 = 4;
const TCA_BPF_OPS: u16 = 5;
const TCA_BPF_FLAGS: u16 = 8;
const TCA_BPF_FLAG_ACT_DIRECT: u32 = 1;
/// `ETH_P_ALL` in network byte order, as `tcm_info` wants it.
const ETH_P_ALL_BE: u32 = 0x0003u16.to_be() as u32;

impl At<'_> {
    /// `tc qdisc add dev <name> clsact`; an existing one is fine.
    pub(crate) async fn ensure_clsact(&self, index: u32, name: &str) -> Result<()> {
        let mut message = TcMessage::with_index(index as i32);
        message.header.parent = TcHandle::CLSACT;
        message.header.handle = TcHandle { major: 0xFFFF, minor: 0 };
        message.attributes.push(TcAttribute::Kind("clsact".into()));
        existing_is_fine(
            self.send(
                RouteNetlinkMessage::NewQueueDiscipline(message),
                NLM_F_CREATE | NLM_F_EXCL,
                format!("tc qdisc add dev {name} clsact"),
            )
            .await,
        )
    }

    /// `tc filter add dev <name> ingress prio <prio> bpf da bytecode <program>`.
    pub(crate) async fn add_ingress_filter(
        &self,
        index: u32,
        name: &str,
        prio: u16,
        program: &[SockFilter],
    ) -> Result<()> {
        let mut ops = Vec::with_capacity(program.len() * 8);
        for ins in program {
            ops.extend_from_slice(&ins.code.to_ne_bytes());
            ops.push(ins.jt);
            ops.push(ins.jf);
            ops.extend_from_slice(&ins.k.to_ne_bytes());
        }
        let count =
            u16::try_from(program.len()).expect("classic BPF programs have at most 4096 instructions");
        let mut message = TcMessage::with_index(index as i32);
        message.header.parent = CLSACT_INGRESS;
        message.header.info = (u32::from(prio) << 16) | ETH_P_ALL_BE;
        message.attributes.push(TcAttribute::Kind("bpf".into()));
        message.attributes.push(TcAttribute::Options(vec![
            TcOption::Other(DefaultNla::new(TCA_BPF_OPS_LEN, count.to_ne_bytes().to_vec())),
            TcOption::Other(DefaultNla::new(TCA_BPF_OPS, ops)),
            TcOption::Other(DefaultNla::new(TCA_BPF_FLAGS, TCA_BPF_FLAG_ACT_DIRECT.to_ne_bytes().to_vec())),
        ]));
        self.send(
            RouteNetlinkMessage::NewTrafficFilter(message),
            NLM_F_CREATE | NLM_F_EXCL,
            format!("tc filter add dev {name} ingress prio {prio} bpf da"),
        )
        .await
    }

    /// `tc filter del dev <name> ingress prio <prio>`.
    pub(crate) async fn del_ingress_filter(&self, index: u32, name: &str, prio: u16) -> Result<()> {
        let mut message = TcMessage::with_index(index as i32);
        message.header.parent = CLSACT_INGRESS;
        message.header.info = (u32::from(prio) << 16) | ETH_P_ALL_BE;
        self.send(
            RouteNetlinkMessage::DelTrafficFilter(message),
            0,
            format!("tc filter del dev {name} ingress prio {prio}"),
        )
        .await
    }
}

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SockFilter {
    pub(crate) code: u16,
    pub(crate) jt: u8,
    pub(crate) jf: u8,
    pub(crate) k: u32,
}

/// Classic BPF programs for tc's `bpf` classifier in direct-action mode, where the return
/// value is the action: `TC_ACT_SHOT` drops, `TC_ACT_UNSPEC` passes on to the next filter.
/// Classic BPF needs no `bpf(2)` privilege, so this works in rootless mode too, and on kernels
/// without `act_gact` or `cls_matchall`.
pub(crate) mod cbpf {
    use std::net::IpAddr;

    use super::SockFilter;

    const LD_H_ABS: u16 = 0x28;
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    const JA: u16 = 0x05;
    const TC_ACT_SHOT: u32 = 2;
    const TC_ACT_UNSPEC: u32 = u32::MAX;
    const ETH_P_IP: u32 = 0x0800;
    const ETH_P_IPV6: u32 = 0x86dd;

    fn op(code: u16, jt: u8, jf: u8, k: u32) -> SockFilter {
        SockFilter { code, jt, jf, k }
    }

    /// Drops every frame.
    pub(crate) fn drop_all() -> Vec<SockFilter> {
        vec![op(RET_K, 0, 0, TC_ACT_SHOT)]
    }

    /// Drops IPv4 and IPv6 packets whose source is one of `sources`; passes everything else
    /// (ARP and neighbour discovery included, so the partition is at layer 3).
    pub(crate) fn drop_from(sources: &[IpAddr]) -> Vec<SockFilter> {
        let pass = op(RET_K, 0, 0, TC_ACT_UNSPEC);
        let drop = op(RET_K, 0, 0, TC_ACT_SHOT);
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for source in sources {
            match source {
                IpAddr::V4(addr) => {
                    // Equal: fall through to the drop; else skip it.
                    v4.push(op(JEQ_K, 0, 1, u32::from(*addr)));
                    v4.push(drop);
                }
                IpAddr::V6(addr) => {
                    let words: Vec<u32> = addr
                        .octets()
                        .chunks(4)
                        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                        .collect();
                    for (i, word) in words.iter().enumerate() {
                        // A mismatch skips the rest of this address's checks and its drop.
                        let skip = u8::try_from(2 * (3 - i) + 1).expect("small");
                        let offset = 14 + 8 + 4 * u32::try_from(i).expect("four words");
                        v6.push(op(LD_W_ABS, 0, 0, offset));
                        v6.push(op(JEQ_K, 0, skip, *word));
                    }
                    v6.push(drop);
                }
            }
        }
        v4.push(pass);
        v6.push(pass);
        // 0: ldh [12]            (EtherType)
        // 1: jeq IPv4 ? 2 : 3
        // 2: ja v4              (the v4 block starts at 6)
        // 3: jeq IPv6 ? 5 : 4
        // 4: ret pass           (ARP and the rest)
        // 5: ja v6              (after the v4 block)
        // 6: ld [26]            (IPv4 source), then the v4 comparisons, then the v6 block.
        let v4_block = 1 + v4.len();
        let mut program = vec![
            op(LD_H_ABS, 0, 0, 12),
            op(JEQ_K, 0, 1, ETH_P_IP),
            op(JA, 0, 0, 3),
            op(JEQ_K, 1, 0, ETH_P_IPV6),
            pass,
            op(JA, 0, 0, u32::try_from(v4_block).expect("programs are small")),
            op(LD_W_ABS, 0, 0, 14 + 12),
        ];
        program.extend(v4);
        program.extend(v6);
        program
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::SockFilter;
    use super::cbpf;

    /// Runs a classic BPF program over a frame, as the kernel would (only the opcodes the
    /// programs above use).
    fn run(program: &[SockFilter], frame: &[u8]) -> u32 {
        let (mut pc, mut a) = (0usize, 0u32);
        loop {
            let ins = program[pc];
            let k = ins.k as usize;
            match ins.code {
                0x28 => a = u32::from(u16::from_be_bytes([frame[k], frame[k + 1]])),
                0x20 => a = u32::from_be_bytes([frame[k], frame[k + 1], frame[k + 2], frame[k + 3]]),
                0x15 => {
                    pc += usize::from(if a == ins.k { ins.jt } else { ins.jf });
                }
                0x05 => pc += k,
                0x06 => return ins.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
            pc += 1;
        }
    }

    fn frame(ethertype: u16, source: IpAddr) -> Vec<u8> {
        let mut frame = vec![0u8; 14 + 40];
        frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
        match source {
            IpAddr::V4(v4) => frame[26..30].copy_from_slice(&v4.octets()),
            IpAddr::V6(v6) => frame[22..38].copy_from_slice(&v6.octets()),
        }
        frame
    }

    const SHOT: u32 = 2;
    const PASS: u32 = u32::MAX;

    #[test]
    fn drop_from_matches_exactly_the_listed_sources() {
        let listed: Vec<IpAddr> =
            ["10.0.0.1", "10.0.0.3", "fd00::1", "fd00::1:3"].iter().map(|a| a.parse().unwrap()).collect();
        let program = cbpf::drop_from(&listed);
        for source in &listed {
            let ethertype = if source.is_ipv4() { 0x0800 } else { 0x86dd };
            assert_eq!(run(&program, &frame(ethertype, *source)), SHOT, "{source}");
        }
        for other in ["10.0.0.2", "10.0.1.1", "fd00::2", "fd00::1:4", "fe80::1"] {
            let source: IpAddr = other.parse().unwrap();
            let ethertype = if source.is_ipv4() { 0x0800 } else { 0x86dd };
            assert_eq!(run(&program, &frame(ethertype, source)), PASS, "{other}");
        }
        // ARP passes whatever it carries.
        assert_eq!(run(&program, &frame(0x0806, "10.0.0.1".parse().unwrap())), PASS);
        assert_eq!(run(&cbpf::drop_all(), &frame(0x0806, "10.0.0.1".parse().unwrap())), SHOT);
    }

    #[test]
    fn drop_from_nothing_passes_everything() {
        let program = cbpf::drop_from(&[]);
        assert_eq!(run(&program, &frame(0x0800, "10.0.0.1".parse().unwrap())), PASS);
        assert_eq!(run(&program, &frame(0x86dd, "fd00::1".parse().unwrap())), PASS);
    }
}
