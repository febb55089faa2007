//! A laboratory link for tests and benchmarks: node `a` ⇄ middle namespace ⇄ node `b`,
//! built inside the calling (child) process the way the topology wiring builds an impaired
//! link, or a plain veth between `a` and `b` to compare against.
//!
//! The nodes have static neighbour entries and no IPv6 addresses, so the probes sent are the
//! only frames on the link: per-probe outcomes then depend on the seed alone. It panics on
//! failure, with a message, as test code does; it is not for user input.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::engine::{Engine, LinkId, LinkSpec};
use super::packet::Port;
use crate::conditions::{Conditions, DirectionCounters, ValidConditions};
use crate::error::Error;
use crate::netlink::NetlinkRuntime;
use crate::netlink::{At, NodeNetlink, VethEnd};
use crate::ns::setup::Setup;
use crate::ns::{self, NsFds, NsRequest};

/// The address of node `a`.
pub(crate) const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The address of node `b`.
pub(crate) const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// The index of `eth0` in `a` and `b`.
pub(crate) const IFINDEX: u32 = 10;
/// The indexes of `ma` and `mb` in the middle namespace. They differ from `eth0`'s: the kernel treats the
/// carrier event of a veth whose index equals its peer's as not urgent and delays it up to a
/// second.
const MIDDLE_IFINDEX: u32 = 20;
/// The MAC addresses of `eth0` in `a` and `b`, and of `ma` and `mb`: locally administered.
const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
const MAC_MA: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x0a];
const MAC_MB: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x0b];

/// Node `a`, node `b`, and the link between them.
pub(crate) struct Lab {
    pub(crate) a: Arc<NsFds>,
    pub(crate) b: Arc<NsFds>,
    /// The engine and the link it carries.
    engine: (Engine, LinkId),
    /// The netlink connections of `a`, the middle namespace and `b`.
    pub(crate) netlink: Vec<NodeNetlink>,
    // The netlink connections run on the control runtime: dropped last.
    pub(crate) netlink_rt: NetlinkRuntime,
}

impl Lab {
    /// Builds `a` ⇄ middle ⇄ `b` and attaches an engine with `a→b` and `b→a` conditions.
    pub(crate) fn new(conditions: [Conditions; 2], seed: u64, capture: Option<PathBuf>) -> Lab {
        Self::build(conditions, seed, capture).unwrap_or_else(|e| panic!("cannot build the link: {e:?}"))
    }

    fn build(conditions: [Conditions; 2], seed: u64, capture: Option<PathBuf>) -> crate::Result<Lab> {
        let netlink_rt = NetlinkRuntime::start()?;
        let names = ["a", "middle", "b"];
        let requests: Vec<NsRequest<'_>> =
            names.iter().map(|name| NsRequest { name, hostname: false }).collect();
        let (made, ()) = ns::create_namespaces(
            &requests,
            |index, _| {
                // ICMP echo sockets for the pings; no IPv6 link-local addresses, hence no router
                // solicitation or MLD frame.
                let setup =
                    Setup { ping: true, ipv6: false, forwarding: false, link_local_per_interface: false };
                ns::setup::set_up(&format!("the lab's `{}`", names[index]), setup)?;
                NodeNetlink::open(netlink_rt.handle()).map_err(|e| Error::io("opening netlink", e))
            },
            || Ok(()),
        )?;
        let (fds, netlink): (Vec<NsFds>, Vec<NodeNetlink>) = made.into_iter().unzip();
        let raw: Vec<i32> = fds.iter().map(|fds| fds.raw().0).collect();
        let wired = netlink.clone();
        netlink_rt.block_on(async move { build_links(&wired, &raw).await })?;
        let mut fds: Vec<Arc<NsFds>> = fds.into_iter().map(Arc::new).collect();
        let b = fds.pop().expect("node b");
        let port =
            |ifindex, ifname: &str| Port { netns: Arc::clone(&fds[1]), ifindex, ifname: ifname.into() };
        let engine = Engine::start()?;
        let conditions = conditions.map(|c| ValidConditions::new(c).expect("the lab's conditions are valid"));
        let id = engine.attach(LinkSpec {
            label: "a–b".into(),
            a: port(MIDDLE_IFINDEX, "ma"),
            b: port(MIDDLE_IFINDEX + 1, "mb"),
            conditions,
            seed,
            capture,
            nat: None,
        })?;
        Ok(Lab { a: Arc::clone(&fds[0]), b, engine: (engine, id), netlink, netlink_rt })
    }

    /// The engine's counters (a→b, b→a).
    pub(crate) fn counters(&self) -> [DirectionCounters; 2] {
        self.engine.0.counters(self.engine.1)
    }

    /// Adds an address to `eth0` of node `a` (`b = false`) or `b` (`ip addr add`), without a
    /// static neighbour entry for it: reaching it takes ARP or neighbour discovery.
    pub(crate) fn add_address(&self, b: bool, address: ipnet::IpNet) {
        let (netlink, node) =
            if b { (&self.netlink[self.netlink.len() - 1], "b") } else { (&self.netlink[0], "a") };
        let handle = netlink.handle.clone();
        self.netlink_rt
            .block_on(async move { At { node, handle: &handle }.add_address(IFINDEX, "eth0", address).await })
            .unwrap_or_else(|e| panic!("{e:?}"));
    }

    /// Writes out the capture.
    pub(crate) fn flush(&self) -> crate::Result<()> {
        self.engine.0.flush()
    }

    /// Pings `b` from `a` `count` times, one after the other, and returns the round-trip
    /// times. The echo is answered by `b`'s kernel and the reply timed by `a`'s kernel on
    /// arrival, so no thread waiting for a CPU on a busy machine is in the measurement: only
    /// the link is.
    pub(crate) fn pings(&self, count: u16) -> Vec<Duration> {
        use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
        use socket2::{Domain, Protocol, Socket, Type};
        use std::os::fd::AsRawFd;
        use std::time::{SystemTime, UNIX_EPOCH};

        let socket = in_node(&self.a, || Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::ICMPV4)))
            .expect("ICMP echo socket in a");
        setsockopt(&socket, sockopt::ReceiveTimestampns, &true).expect("SO_TIMESTAMPNS");
        socket.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        socket.connect(&SocketAddr::from((B, 0)).into()).expect("connect");
        (0..count)
            .map(|seq| {
                let mut request = vec![8, 0, 0, 0, 0, 0];
                request.extend_from_slice(&seq.to_be_bytes());
                request.extend_from_slice(b"netns-test link");
                let sent = SystemTime::now();
                socket.send(&request).expect("send echo request");
                loop {
                    let mut buffer = [0u8; 128];
                    let mut control = nix::cmsg_space!(nix::sys::time::TimeSpec);
                    let (len, stamp) = {
                        let mut iov = [std::io::IoSliceMut::new(&mut buffer)];
                        let message = recvmsg::<()>(
                            socket.as_raw_fd(),
                            &mut iov,
                            Some(&mut control),
                            MsgFlags::empty(),
                        )
                        .expect("an echo reply within 5 s");
                        let stamp = message.cmsgs().ok().and_then(|mut all| {
                            all.find_map(|c| match c {
                                ControlMessageOwned::ScmTimestampns(ts) => Some(ts),
                                _ => None,
                            })
                        });
                        (message.bytes, stamp)
                    };
                    if len >= 8 && buffer[0] == 0 && buffer[6..8] == seq.to_be_bytes() {
                        let stamp = stamp.expect("a kernel receive timestamp");
                        let received =
                            UNIX_EPOCH + Duration::new(stamp.tv_sec() as u64, stamp.tv_nsec() as u32);
                        return received.duration_since(sent).unwrap_or_default();
                    }
                }
            })
            .collect()
    }

    /// Waits until no frame is in the link in either direction, and returns the counters.
    pub(crate) fn settle(&self) -> [DirectionCounters; 2] {
        let idle = |c: &DirectionCounters| {
            c.frames_out + c.lost + c.queue_drops + c.send_errors == c.frames_in + c.duplicated
        };
        let mut counters = self.counters();
        wait_until("the link to be idle", Duration::from_secs(10), || {
            counters = self.counters();
            counters.iter().all(idle)
        });
        counters
    }

    /// Sends `data` from `a` to `b` over TCP and returns what `b` received.
    pub(crate) fn tcp_transfer(&self, data: &Arc<Vec<u8>>) -> Vec<u8> {
        let listener = in_node(&self.b, || TcpListener::bind((B, 5001))).expect("listener in b");
        let server = thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut received = Vec::new();
            stream.read_to_end(&mut received).expect("read");
            received
        });
        let mut client = in_node(&self.a, || TcpStream::connect((B, 5001))).expect("connect from a");
        client.write_all(data).expect("write");
        client.shutdown(std::net::Shutdown::Write).expect("shutdown");
        server.join().expect("server")
    }
}

/// Creates the veths (through the middle namespace), addresses and
/// static neighbours, and waits until every link is ready.
async fn build_links(netlink: &[NodeNetlink], fds: &[i32]) -> crate::Result<()> {
    let (na, nb) = (&netlink[0], &netlink[netlink.len() - 1]);
    let (fa, fb) = (fds[0], fds[fds.len() - 1]);
    let at_a = At { node: "a", handle: &na.handle };
    let at_b = At { node: "b", handle: &nb.handle };
    let end = |node: &str, name: &str, index, mac, netns| VethEnd {
        node: node.into(),
        name: name.into(),
        index,
        mac,
        netns,
        mtu: None,
        controller: None,
    };
    let (nw, fw) = (&netlink[1], fds[1]);
    let at_w = At { node: "middle", handle: &nw.handle };
    let (ma, mb) = (MIDDLE_IFINDEX, MIDDLE_IFINDEX + 1);
    at_a.add_veth(&end("a", "eth0", IFINDEX, MAC_A, fa), &end("middle", "ma", ma, MAC_MA, fw)).await?;
    at_w.set_link_up(ma, "ma", true).await?;
    at_w.add_veth(&end("middle", "mb", mb, MAC_MB, fw), &end("b", "eth0", IFINDEX, MAC_B, fb)).await?;
    let ready = [(na, IFINDEX), (nb, IFINDEX), (nw, ma), (nw, mb)];
    at_b.set_link_up(IFINDEX, "eth0", true).await?;
    at_a.add_address(IFINDEX, "eth0", "10.0.0.1/24".parse().expect("address")).await?;
    at_b.add_address(IFINDEX, "eth0", "10.0.0.2/24".parse().expect("address")).await?;
    // Static neighbours: no ARP frame ever shifts the sequence of decisions.
    at_a.add_static_neighbour(IFINDEX, B.into(), MAC_B).await?;
    at_b.add_static_neighbour(IFINDEX, A.into(), MAC_A).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    for (netlink, index) in ready {
        netlink.links.wait(&netlink.handle, index, deadline, |s| s.ready()).await.map_err(|last| {
            Error::Timeout {
                what: format!("link {index} ready (last: {last:?})"),
                after: Duration::from_secs(10),
            }
        })?;
    }
    Ok(())
}

/// Runs `f` on a thread inside `node` (`a` or `b`), as the tests make their sockets.
pub(crate) fn in_node<T: Send>(
    node: &NsFds,
    f: impl FnOnce() -> std::io::Result<T> + Send,
) -> std::io::Result<T> {
    ns::run_in(node, "netns-test-lab", f).map_err(std::io::Error::from).and_then(|result| result)
}

/// Waits for `condition`, checking every millisecond, and panics after `limit`.
pub(crate) fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}
