//! The encoder against the kernel: batches applied for real and read back, each test in a
//! scratch network namespace of its own on a thread of its own (inside the test's own child
//! process and namespaces), so that no rule is ever made anywhere else, and none outlives the
//! test. They run rootless too, where CAP_NET_ADMIN in the test's user namespace is enough.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use super::*;

/// Runs `body` on a new thread in a new network namespace whose loopback is up.
fn in_scratch_namespace<T: Send>(body: impl FnOnce() -> T + Send) -> T {
    crate::ns::on_thread("netns-test-nftables", || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("a scratch network namespace");
        crate::ns::setup::loopback_up().expect("loopback up");
        body()
    })
    .expect("a thread for the scratch namespace")
}

const TABLE: &str = "netns_test";

/// The rules of `chain` of the test table, by comment.
fn rule(chain: &str, comment: &str) -> RuleDump {
    let rules = list_rules(Family::Inet, TABLE, Some(chain)).expect("the rules");
    rules
        .into_iter()
        .find(|rule| rule.comment.as_deref() == Some(comment))
        .unwrap_or_else(|| panic!("no rule {comment:?}"))
}

fn output_chain() -> BaseChain {
    BaseChain { kind: ChainType::Filter, hook: Hook::Output, priority: 0, policy: Some(Policy::Accept) }
}

#[crate::test]
fn the_kernel_takes_a_table_a_base_chain_and_counter_rules_and_counts() {
    in_scratch_namespace(|| {
        let mut batch = Batch::new();
        batch.add_table(Family::Inet, TABLE).expect("valid");
        batch.add_chain(Family::Inet, TABLE, "out", Some(&output_chain())).expect("valid");
        let out = || Rule::new(Family::Inet, TABLE, "out");
        batch.add_rule(&out().dport(proto::UDP, 9..=9).counter().comment("udp-9")).expect("valid");
        batch
            .add_rule(
                &out().dport(proto::UDP, 9999..=9999).counter().verdict(Verdict::Drop).comment("drop-9999"),
            )
            .expect("valid");
        apply(&batch).expect("the kernel takes the batch");

        let socket = UdpSocket::bind("127.0.0.1:0").expect("a socket");
        for _ in 0..3 {
            socket.send_to(&[0; 10], "127.0.0.1:9").expect("sent");
        }
        // A packet dropped in the output hook fails the send.
        let dropped = socket.send_to(&[0; 10], "127.0.0.1:9999").expect_err("dropped");
        assert_eq!(dropped.raw_os_error(), Some(libc::EPERM), "{dropped}");

        let counted = rule("out", "udp-9");
        assert_eq!(counted.counter, Some(Counter { packets: 3, bytes: 3 * (20 + 8 + 10) }));
        assert_eq!(
            (counted.family, counted.table.as_str(), counted.chain.as_str()),
            (Family::Inet, TABLE, "out")
        );
        assert_eq!(counted.verdict, None);
        let drop = rule("out", "drop-9999");
        assert_eq!(
            (drop.counter, drop.verdict.clone()),
            (Some(Counter { packets: 1, bytes: 38 }), Some(Verdict::Drop))
        );
        assert_ne!(drop.handle, counted.handle);

        // Deleting the drop rule by its handle lets the datagram through.
        let mut batch = Batch::new();
        batch.delete_rule(Family::Inet, TABLE, "out", drop.handle).expect("valid");
        apply(&batch).expect("deleted");
        socket.send_to(&[0; 10], "127.0.0.1:9999").expect("no longer dropped");
        let left: Vec<_> =
            list_rules(Family::Inet, TABLE, None).expect("rules").into_iter().map(|r| r.comment).collect();
        assert_eq!(left, [Some("udp-9".to_owned())]);

        let error = list_rules(Family::Inet, TABLE, Some("nosuch")).expect_err("no chain");
        assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
        assert!(error.to_string().contains("list chain inet netns_test nosuch"), "{error}");

        let mut batch = Batch::new();
        batch.delete_table(Family::Inet, TABLE).expect("valid");
        apply(&batch).expect("deleted");
        let gone = list_rules(Family::Inet, TABLE, None).expect_err("no table");
        assert_eq!(
            list_rules(Family::Inet, TABLE, Some("out")).expect_err("no chain").kind(),
            io::ErrorKind::NotFound
        );
        let refused = gone.get_ref().and_then(|e| e.downcast_ref::<Refused>()).expect("a Refused");
        assert_eq!((refused.errno(), refused.what()), (libc::ENOENT, "list table inet netns_test"));
    });
}

#[crate::test]
fn a_rejected_connect_fails_at_once_where_a_dropped_one_waits() {
    in_scratch_namespace(|| {
        let rejected = TcpListener::bind("127.0.0.1:0").expect("a listener");
        let dropped = TcpListener::bind("127.0.0.1:0").expect("a listener");
        let port = |listener: &TcpListener| listener.local_addr().expect("an address").port();
        let input = BaseChain {
            kind: ChainType::Filter,
            hook: Hook::Input,
            priority: 0,
            policy: Some(Policy::Accept),
        };
        let mut batch = Batch::new();
        batch.add_table(Family::Inet, TABLE).expect("valid");
        batch.add_chain(Family::Inet, TABLE, "in", Some(&input)).expect("valid");
        let rule = || Rule::new(Family::Inet, TABLE, "in");
        let (reject, drop) = (port(&rejected), port(&dropped));
        batch
            .add_rule(
                &rule()
                    .dport(proto::TCP, reject..=reject)
                    .counter()
                    .reject(Reject::TcpReset)
                    .comment("reject"),
            )
            .expect("valid");
        batch
            .add_rule(&rule().dport(proto::TCP, drop..=drop).counter().verdict(Verdict::Drop).comment("drop"))
            .expect("valid");
        apply(&batch).expect("the kernel takes the batch");

        // Though a listener is there, the RST refuses the connection.
        let started = Instant::now();
        let error = TcpStream::connect(("127.0.0.1", reject)).expect_err("rejected");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error}");
        // A dropped SYN is never answered: the connect waits out its whole timeout, and the
        // rejected one took less (a ratio, not an absolute time).
        let patience = Duration::from_secs(1);
        let waited = Instant::now();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, drop));
        let error = TcpStream::connect_timeout(&addr, patience).expect_err("dropped");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
        assert!(waited.elapsed() >= patience);
        let rejected_after = started.elapsed() - waited.elapsed();
        assert!(rejected_after < waited.elapsed(), "the reject took {rejected_after:?}");
        assert_eq!(rule_counter("in", "reject"), 1);
        assert!(rule_counter("in", "drop") >= 1, "SYN retransmissions count too");
    });
}

fn rule_counter(chain: &str, comment: &str) -> u64 {
    rule(chain, comment).counter.map(|c| c.packets).unwrap_or_default()
}

#[crate::test]
fn the_kernel_takes_every_kind_of_rule_the_encoder_makes() {
    in_scratch_namespace(|| {
        let mut batch = Batch::new();
        let forward = BaseChain {
            kind: ChainType::Filter,
            hook: Hook::Forward,
            priority: 0,
            policy: Some(Policy::Drop),
        };
        batch.add_table(Family::Inet, TABLE).expect("valid");
        batch.add_chain(Family::Inet, TABLE, "fw", Some(&forward)).expect("valid");
        batch.add_chain(Family::Inet, TABLE, "side", None).expect("valid");
        let fw = || Rule::new(Family::Inet, TABLE, "fw");
        let net = |text: &str| text.parse().expect("a prefix");
        for rule in [
            fw().iifname("eth0").oifname("eth1").counter().verdict(Verdict::Accept),
            fw().ct_state(ct_state::ESTABLISHED | ct_state::RELATED).verdict(Verdict::Accept),
            fw().ct_state(ct_state::NEW | ct_state::INVALID | ct_state::UNTRACKED)
                .counter()
                .verdict(Verdict::Drop),
            fw().ip_saddr(net("100.64.0.0/10")).ip_daddr(net("10.0.0.0/8")).verdict(Verdict::Continue),
            fw().ip6_saddr("fd00::/7".parse().expect("a prefix")).verdict(Verdict::Return),
            fw().dport(proto::TCP, 80..=80).reject(Reject::TcpReset),
            fw().dport_not(proto::UDP, 53..=53).sport(proto::UDP, 1024..=65535).reject(Reject::Icmpx(1)),
            fw().nfproto(Family::Ipv4).reject(Reject::Icmp(13)),
            fw().nfproto(Family::Ipv6).reject(Reject::Icmpv6(1)),
            fw().icmp(3, Some(4)).counter().verdict(Verdict::Drop),
            fw().icmpv6(2, None).counter().verdict(Verdict::Drop),
            fw().verdict(Verdict::Jump("side".into())),
            fw().verdict(Verdict::Goto("side".into())),
        ] {
            batch.add_rule(&rule).expect("valid");
        }
        batch.add_table(Family::Ipv4, "nat").expect("valid");
        let post = BaseChain { kind: ChainType::Nat, hook: Hook::Postrouting, priority: 100, policy: None };
        let pre = BaseChain { kind: ChainType::Nat, hook: Hook::Prerouting, priority: -100, policy: None };
        batch.add_chain(Family::Ipv4, "nat", "post", Some(&post)).expect("valid");
        batch.add_chain(Family::Ipv4, "nat", "pre", Some(&pre)).expect("valid");
        let post = || Rule::new(Family::Ipv4, "nat", "post");
        for rule in [
            post()
                .oifname("eth1")
                .l4proto(proto::UDP)
                .masquerade(Some(1024..=60999), nat_flags::PROTO_RANDOM),
            post().l4proto(proto::TCP).masquerade(Some(1024..=60999), nat_flags::PERSISTENT),
            post().masquerade(None, nat_flags::PROTO_RANDOM_FULLY),
            post().l4proto(proto::UDP).snat(Ipv4Addr::new(203, 0, 113, 1), Some(1024..=60999)),
            post().snat(Ipv4Addr::new(203, 0, 113, 1), None),
            Rule::new(Family::Ipv4, "nat", "pre")
                .dport(proto::TCP, 80..=80)
                .dnat(Ipv4Addr::new(10, 0, 0, 2), Some(8080)),
            Rule::new(Family::Ipv4, "nat", "pre").dnat(Ipv4Addr::new(10, 0, 0, 2), None),
        ] {
            batch.add_rule(&rule).expect("valid");
        }
        apply(&batch).expect("the kernel takes every rule");
        assert_eq!(list_rules(Family::Inet, TABLE, Some("fw")).expect("rules").len(), 13);
        assert_eq!(list_rules(Family::Ipv4, "nat", None).expect("rules").len(), 7);
    });
}

#[crate::test]
fn a_refused_request_is_named_and_the_batch_is_undone() {
    in_scratch_namespace(|| {
        let mut batch = Batch::new();
        batch.add_table(Family::Inet, TABLE).expect("valid");
        batch.add_chain(Family::Inet, "missing", "c", None).expect("valid");
        let error = apply(&batch).expect_err("no table `missing`");
        assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
        let refused = error.get_ref().and_then(|e| e.downcast_ref::<Refused>()).expect("a Refused");
        assert_eq!((refused.errno(), refused.what()), (libc::ENOENT, "add chain inet missing c"));
        assert!(error.to_string().starts_with("nftables refused `add chain inet missing c`: "), "{error}");
        // All or nothing: the table of the same batch was not made.
        let error = list_rules(Family::Inet, TABLE, None).expect_err("undone");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        // A jump to a chain that does not exist.
        let mut batch = Batch::new();
        batch.add_table(Family::Inet, TABLE).expect("valid");
        batch.add_chain(Family::Inet, TABLE, "c", None).expect("valid");
        batch
            .add_rule(
                &Rule::new(Family::Inet, TABLE, "c")
                    .verdict(Verdict::Jump("nowhere".into()))
                    .comment("to nowhere"),
            )
            .expect("valid");
        let error = apply(&batch).expect_err("no chain `nowhere`");
        assert!(error.to_string().contains("add rule inet netns_test c (comment \"to nowhere\")"), "{error}");
    });
}
