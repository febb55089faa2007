//! Traffic through the engine, for real: node `a` ⇄ hidden wire namespace ⇄ node `b`, built
//! inside each test's own child process, the way the topology wiring builds an impaired link.
//!
//! The nodes have static neighbour entries and no IPv6 addresses, so the probes of a test are
//! the only frames on the link: per-probe outcomes then depend on the seed alone.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::LinkAttribute;

use super::packet::in_namespace;
use super::*;
use crate::ctl::Ctl;
use crate::error::Error;
use crate::ns::{self, NsFds, NsRequest};
use crate::wiring::{At, NodeNetlink, VethEnd};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const ECHO_PORT: u16 = 7;
const IFINDEX: u32 = 10;

/// Node `a`, node `b`, and the engine carrying the link between them.
pub(super) struct Fixture {
    pub(super) a: Arc<NsFds>,
    pub(super) b: Arc<NsFds>,
    pub(super) engine: Engine,
    pub(super) id: WireId,
    /// The netlink connections of `a`, the wire and `b`.
    pub(super) netlink: Vec<NodeNetlink>,
    // The netlink connections run on the control runtime: dropped last.
    pub(super) ctl: Ctl,
}

impl Fixture {
    /// Builds `a` ⇄ wire ⇄ `b` and attaches the engine with `a→b` and `b→a` conditions.
    pub(super) fn new(conditions: [Conditions; 2], seed: u64, capture: Option<PathBuf>) -> Fixture {
        Self::try_new(conditions, seed, capture)
            .unwrap_or_else(|e| panic!("cannot build the link: {e:?}"))
    }

    fn try_new(
        conditions: [Conditions; 2],
        seed: u64,
        capture: Option<PathBuf>,
    ) -> crate::Result<Fixture> {
        let ctl = Ctl::start()?;
        let requests = ["a", "wire", "b"].map(|name| NsRequest {
            name,
            hostname: false,
        });
        let made = ns::create_namespaces(&requests, |_, _| {
            for (key, value) in [
                ("net.ipv6.conf.default.addr_gen_mode", "1"),
                ("net.ipv4.ping_group_range", "0 2147483647"),
            ] {
                ns::write_sysctl(key, value).map_err(|e| Error::io(format!("setting {key}"), e))?;
            }
            NodeNetlink::open(ctl.handle()).map_err(|e| Error::io("opening netlink", e))
        })?;
        let mut made = made.into_iter();
        let mut next = || made.next().expect("three namespaces");
        let ((a, na), (wire, nw), (b, nb)) = (next(), next(), next());
        let (fa, fw, fb) = (a.raw().0, wire.raw().0, b.raw().0);
        let netlink = vec![na.clone(), nw.clone(), nb.clone()];
        ctl.block_on(async move {
            let (at_a, at_w, at_b) = (
                At {
                    node: "a",
                    handle: &na.handle,
                },
                At {
                    node: "wire",
                    handle: &nw.handle,
                },
                At {
                    node: "b",
                    handle: &nb.handle,
                },
            );
            let end = |node, name, index, netns| VethEnd {
                node,
                name,
                index,
                netns,
                mtu: None,
                controller: None,
            };
            at_a.add_veth(
                &end("a", "eth0", IFINDEX, fa),
                &end("wire", "ma", IFINDEX, fw),
            )
            .await?;
            at_w.set_link_up(IFINDEX, "ma", true).await?;
            at_w.add_veth(
                &end("wire", "mb", IFINDEX + 1, fw),
                &end("b", "eth0", IFINDEX, fb),
            )
            .await?;
            at_b.set_link_up(IFINDEX, "eth0", true).await?;
            at_a.add_address(IFINDEX, "eth0", "10.0.0.1/24".parse().expect("address"))
                .await?;
            at_b.add_address(IFINDEX, "eth0", "10.0.0.2/24".parse().expect("address"))
                .await?;
            // Static neighbours: no ARP frame ever shifts the sequence of decisions.
            let mac_a = mac(&na, "a").await?;
            let mac_b = mac(&nb, "b").await?;
            neighbour(&na, "a", B, &mac_b).await?;
            neighbour(&nb, "b", A, &mac_a).await?;
            let deadline = Instant::now() + Duration::from_secs(10);
            for (netlink, index) in [
                (&na, IFINDEX),
                (&nw, IFINDEX),
                (&nw, IFINDEX + 1),
                (&nb, IFINDEX),
            ] {
                netlink
                    .links
                    .wait(&netlink.handle, index, deadline, |s| s.ready())
                    .await
                    .map_err(|last| Error::Timeout {
                        what: format!("link {index} ready (last: {last:?})"),
                        after: Duration::from_secs(10),
                    })?;
            }
            Ok::<(), Error>(())
        })?;
        let wire = Arc::new(wire);
        let port = |ifindex, ifname: &str| Port {
            netns: Arc::clone(&wire),
            ifindex,
            ifname: ifname.into(),
        };
        let engine = Engine::start()?;
        let id = engine.attach(WireSpec {
            label: "a–b".into(),
            a: port(IFINDEX, "ma"),
            b: port(IFINDEX + 1, "mb"),
            conditions,
            seed,
            capture,
        })?;
        Ok(Fixture {
            a: Arc::new(a),
            b: Arc::new(b),
            engine,
            id,
            netlink,
            ctl,
        })
    }

    /// Starts a UDP echo server in `b` (it lives as long as the test process).
    pub(super) fn echo_server(&self) {
        let socket =
            in_namespace(&self.b, || UdpSocket::bind((B, ECHO_PORT))).expect("echo socket in b");
        thread::spawn(move || {
            let mut buffer = [0u8; 2048];
            while let Ok((n, from)) = socket.recv_from(&mut buffer) {
                let _ = socket.send_to(&buffer[..n], from);
            }
        });
    }

    /// A UDP socket in `a` connected to the echo server.
    pub(super) fn client(&self) -> UdpSocket {
        in_namespace(&self.a, || {
            let socket = UdpSocket::bind((A, 0))?;
            socket.connect((B, ECHO_PORT))?;
            Ok(socket)
        })
        .expect("client socket in a")
    }

    /// Pings `b` from `a` `count` times, one after the other, and returns the round-trip
    /// times. The echo is answered by `b`'s kernel and the reply timed by `a`'s kernel on
    /// arrival, so no thread waiting for a CPU on a busy machine is in the measurement: only
    /// the link is.
    pub(super) fn pings(&self, count: u16) -> Vec<Duration> {
        use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
        use socket2::{Domain, Protocol, Socket, Type};
        use std::os::fd::AsRawFd;
        use std::time::{SystemTime, UNIX_EPOCH};

        let socket = in_namespace(&self.a, || {
            Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::ICMPV4))
        })
        .expect("ICMP echo socket in a");
        setsockopt(&socket, sockopt::ReceiveTimestampns, &true).expect("SO_TIMESTAMPNS");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        socket
            .connect(&SocketAddr::from((B, 0)).into())
            .expect("connect");
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
                        let received = UNIX_EPOCH
                            + Duration::new(stamp.tv_sec() as u64, stamp.tv_nsec() as u32);
                        return received.duration_since(sent).unwrap_or_default();
                    }
                }
            })
            .collect()
    }

    /// Sends `count` probes, `interval` apart, without waiting for the echoes; returns which
    /// came back. Waits until every probe is accounted for: echoed, or lost in the engine.
    pub(super) fn outcomes(&self, count: u32, interval: Duration) -> Vec<bool> {
        let client = self.client();
        let received = Arc::new(Mutex::new(vec![false; count as usize]));
        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let client = client.try_clone().expect("clone socket");
            let (received, done) = (Arc::clone(&received), Arc::clone(&done));
            client
                .set_read_timeout(Some(Duration::from_millis(20)))
                .expect("timeout");
            thread::spawn(move || {
                let mut buffer = [0u8; 64];
                while !done.load(Ordering::Relaxed) {
                    if let Ok(4) = client.recv(&mut buffer) {
                        let seq =
                            u32::from_be_bytes(buffer[..4].try_into().expect("4 bytes")) as usize;
                        if let Some(slot) = received.lock().expect("lock").get_mut(seq) {
                            *slot = true;
                        }
                    }
                }
            })
        };
        let start = Instant::now();
        for seq in 0..count {
            // Pacing the probes (not synchronising anything): one every `interval`.
            let due = start + interval * seq;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            client.send(&seq.to_be_bytes()).expect("send probe");
        }
        let accounted = || {
            let [ab, ba] = self.engine.counters(self.id);
            let echoed = received
                .lock()
                .expect("lock")
                .iter()
                .filter(|r| **r)
                .count() as u64;
            echoed + ab.lost + ba.lost >= u64::from(count)
        };
        wait_until(
            "every probe echoed or lost",
            Duration::from_secs(10),
            accounted,
        );
        done.store(true, Ordering::Relaxed);
        reader.join().expect("reader");
        let outcomes = received.lock().expect("lock").clone();
        outcomes
    }

    /// Waits until no frame is in the link in either direction, and returns the counters.
    pub(super) fn settle(&self) -> [DirectionCounters; 2] {
        let idle = |c: &DirectionCounters| {
            c.frames_out + c.lost + c.queue_drops + c.send_errors == c.frames_in + c.duplicated
        };
        let mut counters = self.engine.counters(self.id);
        wait_until("the link to be idle", Duration::from_secs(10), || {
            counters = self.engine.counters(self.id);
            counters.iter().all(idle)
        });
        counters
    }

    /// Sends `data` from `a` to `b` over TCP and returns what `b` received.
    pub(super) fn tcp_transfer(&self, data: &Arc<Vec<u8>>) -> Vec<u8> {
        let listener =
            in_namespace(&self.b, || TcpListener::bind((B, 5001))).expect("listener in b");
        let server = thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut received = Vec::new();
            stream.read_to_end(&mut received).expect("read");
            received
        });
        let mut client =
            in_namespace(&self.a, || TcpStream::connect((B, 5001))).expect("connect from a");
        client.write_all(data).expect("write");
        client
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
        server.join().expect("server")
    }
}

async fn mac(netlink: &NodeNetlink, node: &str) -> crate::Result<Vec<u8>> {
    let mut links = netlink.handle.link().get().match_index(IFINDEX).execute();
    let link = links
        .try_next()
        .await
        .map_err(|e| Error::netlink(node, "ip link show eth0", e))?;
    link.and_then(|link| {
        link.attributes.into_iter().find_map(|a| match a {
            LinkAttribute::Address(mac) => Some(mac),
            _ => None,
        })
    })
    .ok_or_else(|| {
        Error::io(
            format!("reading the MAC address of eth0 in `{node}`"),
            std::io::ErrorKind::NotFound.into(),
        )
    })
}

async fn neighbour(
    netlink: &NodeNetlink,
    node: &str,
    ip: Ipv4Addr,
    mac: &[u8],
) -> crate::Result<()> {
    netlink
        .handle
        .neighbours()
        .add(IFINDEX, IpAddr::V4(ip))
        .link_layer_address(mac)
        .execute()
        .await
        .map_err(|e| {
            Error::netlink(
                node,
                format!("ip neigh add {ip} lladdr ... dev eth0 nud permanent"),
                e,
            )
        })
}

/// Waits for `condition`, checking every millisecond, and panics after `limit`.
pub(super) fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn ms(value: u64) -> Duration {
    Duration::from_millis(value)
}

/// 10 MB that do not repeat with any short period, so that a misplaced segment shows.
fn pattern(len: usize) -> Arc<Vec<u8>> {
    Arc::new(
        (0..len)
            .map(|i| (i.wrapping_mul(31) ^ (i >> 11)) as u8)
            .collect(),
    )
}

fn capture_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "netns-test-link-{}-{name}.pcap",
        std::process::id()
    ))
}

/// The frames of a pcap file.
fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let file = std::fs::File::open(path).expect("open the capture");
    let mut reader = pcap_file::pcap::PcapReader::new(file).expect("a pcap header");
    let mut frames = Vec::new();
    while let Some(packet) = reader.next_packet() {
        frames.push(packet.expect("a complete pcap record").data.into_owned());
    }
    frames
}

#[crate::test]
fn a_perfect_link_carries_udp_and_tcp() {
    let link = Fixture::new(Default::default(), 1, None);
    let rtts = link.pings(20);
    assert!(median(rtts.clone()) < ms(1), "{rtts:?}");
    let data = pattern(10 << 20);
    let received = link.tcp_transfer(&data);
    assert!(
        received == *data,
        "received {} bytes, not the {} sent (or not the same)",
        received.len(),
        data.len()
    );
    let [ab, ba] = link.engine.counters(link.id);
    assert!(
        ab.bytes_out >= 10 << 20 && ab.frames_out >= (10 << 20) / 1514,
        "{ab}"
    );
    assert_eq!(
        (ab.lost, ab.queue_drops, ab.send_errors, ba.send_errors),
        (0, 0, 0, 0),
        "{ab} / {ba}"
    );
}

#[crate::test]
fn ten_ms_each_way_gives_a_twenty_ms_round_trip() {
    let delay = Conditions::new().delay(ms(10));
    let link = Fixture::new([delay.clone(), delay], 1, None);
    let rtts = link.pings(30);
    let median = median(rtts.clone());
    assert!(
        median >= ms(20) && median <= ms(21),
        "median {median:?} of {rtts:?}"
    );
    assert!(rtts.iter().all(|rtt| *rtt >= ms(20)), "{rtts:?}");
}

#[crate::test]
fn ten_percent_loss_lands_in_the_binomial_bound() {
    let link = Fixture::new([Conditions::new().loss(0.1), Conditions::new()], 2024, None);
    link.echo_server();
    let outcomes = link.outcomes(2000, Duration::from_micros(200));
    let lost = outcomes.iter().filter(|r| !**r).count();
    // n = 2000, p = 0.1: mean 200, σ = 13.4; 99 % two-sided bound ±2.576 σ.
    assert!((166..=234).contains(&lost), "{lost} of 2000 probes lost");
    let [ab, ba] = link.engine.counters(link.id);
    assert_eq!(ab.lost as usize, lost, "{ab}");
    assert_eq!((ab.frames_in, ba.lost), (2000, 0), "{ab} / {ba}");
}

#[crate::test]
fn the_same_seed_replays_the_same_outcomes() {
    let conditions = || [Conditions::new().loss(0.2), Conditions::new().loss(0.2)];
    let run = |seed| {
        let link = Fixture::new(conditions(), seed, None);
        link.echo_server();
        link.outcomes(300, Duration::from_micros(300))
    };
    let first = run(7);
    assert!(first.iter().any(|r| !r) && first.iter().any(|r| *r));
    assert_eq!(first, run(7), "seed 7 twice");
    assert_ne!(first, run(8), "seeds 7 and 8");
}

#[crate::test(timeout = "120s")]
fn tcp_crosses_loss_delay_and_reordering_byte_exact() {
    let path = capture_path("tcp");
    let lossy = Conditions::new().delay(ms(5)).loss(0.01).reorder(0.1);
    let link = Fixture::new([lossy.clone(), lossy], 99, Some(path.clone()));
    let data = pattern(10 << 20);
    let received = link.tcp_transfer(&data);
    assert!(
        received == *data,
        "received {} bytes, not the {} sent (or not the same)",
        received.len(),
        data.len()
    );
    let [ab, ba] = link.settle();
    assert!(
        ab.lost > 0 && ab.reordered > 0 && ba.lost > 0,
        "{ab} / {ba}"
    );
    link.engine.flush().expect("flush");
    // Offloads are undone on an impaired link: every frame fits the 1500-byte MTU.
    let frames = read_pcap(&path);
    let largest = frames.iter().map(Vec::len).max().unwrap_or(0);
    assert!(largest <= 1514, "a {largest}-byte frame crossed");
    assert_eq!(frames.len() as u64, ab.frames_out + ba.frames_out);
    let _ = std::fs::remove_file(path);
}

#[crate::test]
fn a_rate_limit_of_10_mbit_measures_within_5_percent() {
    const RATE: f64 = 10e6;
    const FRAME: usize = 1514;
    let link = Fixture::new(
        [Conditions::new().rate(10_000_000), Conditions::new()],
        1,
        None,
    );
    let receiver = in_namespace(&link.b, || UdpSocket::bind((B, 9000))).expect("receiver in b");
    receiver
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let sender = in_namespace(&link.a, || UdpSocket::bind((A, 0))).expect("sender in a");
    let target = SocketAddr::from((B, 9000));
    let count = 1500u32;
    let arrivals = thread::spawn(move || {
        let mut buffer = [0u8; 2048];
        let mut times = Vec::new();
        while let Ok(n) = receiver.recv(&mut buffer) {
            times.push(Instant::now());
            if n == FRAME - 42 && buffer[..4] == (count - 1).to_be_bytes() {
                break;
            }
        }
        times
    });
    // Offer 13 Mbit/s, so that the link is always busy; the queue (1000 packets) absorbs the
    // excess for the ~1.7 s this takes.
    let gap = Duration::from_secs_f64(FRAME as f64 * 8.0 / 13e6);
    let start = Instant::now();
    let mut payload = vec![0u8; FRAME - 42];
    for seq in 0..count {
        if let Some(wait) = (start + gap * seq).checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        payload[..4].copy_from_slice(&seq.to_be_bytes());
        sender.send_to(&payload, target).expect("send");
    }
    let times = arrivals.join().expect("receiver");
    assert!(times.len() > 1000, "only {} datagrams arrived", times.len());
    // From the 10th arrival on (the first ones may still be in the sender's burst).
    let span = times[times.len() - 1] - times[10];
    let measured = (times.len() - 11) as f64 * FRAME as f64 * 8.0 / span.as_secs_f64();
    let error = (measured - RATE) / RATE;
    assert!(error.abs() < 0.05, "measured {:.3} Mbit/s", measured / 1e6);
    assert_eq!(link.engine.counters(link.id)[0].queue_drops, 0);
}

#[crate::test]
fn duplicates_and_corruption_show_in_counters_and_capture() {
    let path = capture_path("dup");
    let link = Fixture::new(
        [
            Conditions::new().duplicate(0.2).corrupt(0.2),
            Conditions::new(),
        ],
        5,
        Some(path.clone()),
    );
    // Bound so that `b` answers no datagram with a port-unreachable error.
    let _receiver = in_namespace(&link.b, || UdpSocket::bind((B, 9001))).expect("receiver in b");
    let sender = in_namespace(&link.a, || UdpSocket::bind((A, 0))).expect("sender in a");
    let count = 300u64;
    for seq in 0..count {
        let mut datagram = vec![0u8; 100];
        datagram[..8].copy_from_slice(&seq.to_be_bytes());
        sender.send_to(&datagram, (B, 9001)).expect("send");
    }
    let counters = || link.engine.counters(link.id)[0];
    wait_until(
        "every datagram through the link",
        Duration::from_secs(10),
        || {
            let ab = counters();
            ab.frames_in == count && ab.frames_out == count + ab.duplicated
        },
    );
    let ab = counters();
    assert!(ab.duplicated > 20 && ab.corrupted > 20, "{ab}");
    link.engine.flush().expect("flush");
    let frames = read_pcap(&path);
    let udp: Vec<&Vec<u8>> = frames
        .iter()
        .filter(|f| f.len() == 142 && f[12..14] == [8, 0] && f[23] == 17)
        .collect();
    // A flipped bit in the IP or UDP part breaks a checksum: that is how a receiver sees it.
    let broken = udp.iter().filter(|f| !ipv4_udp_checksums_hold(f)).count() as u64;
    assert!(
        broken >= ab.corrupted / 2 && broken <= ab.corrupted,
        "{broken} broken frames, {ab}"
    );
    // Duplicates that escaped corruption are byte-identical repeats.
    let mut distinct = udp.clone();
    distinct.sort();
    distinct.dedup();
    assert!(
        (udp.len() - distinct.len()) as u64 >= ab.duplicated / 3,
        "{} repeats, {ab}",
        udp.len() - distinct.len()
    );
    let _ = std::fs::remove_file(path);
}

fn ipv4_udp_checksums_hold(frame: &[u8]) -> bool {
    use super::gso::{fold, ones_sum};
    let ip = &frame[14..34];
    let udp = &frame[34..];
    let pseudo = ones_sum(&ip[12..20], 17 + udp.len() as u32);
    fold(ones_sum(ip, 0)) == 0xffff && fold(ones_sum(udp, pseudo)) == 0xffff
}

#[crate::test]
fn a_delay_change_takes_effect_mid_test() {
    let five = Conditions::new().delay(ms(5));
    let link = Fixture::new([five.clone(), five], 1, None);
    let before = median(link.pings(10));
    for direction in Direction::BOTH {
        link.engine
            .set_conditions(link.id, direction, Conditions::new().delay(ms(25)))
            .expect("set");
    }
    let after = median(link.pings(10));
    assert!(before >= ms(10) && before <= ms(11), "before: {before:?}");
    assert!(after >= ms(50) && after <= ms(51), "after: {after:?}");
    let error = link
        .engine
        .set_conditions(link.id, Direction::AToB, Conditions::new().loss(3.0))
        .unwrap_err();
    assert!(
        format!("{error:?}").contains("invalid condition loss = 3"),
        "{error:?}"
    );
}

#[crate::test]
fn the_capture_opens_in_tshark_and_shows_the_ping() {
    let path = capture_path("icmp");
    let delay = Conditions::new().delay(ms(1));
    let link = Fixture::new([delay.clone(), delay], 1, Some(path.clone()));
    // An ICMP echo socket: the kernel in `b` answers.
    let socket = in_namespace(&link.a, || {
        socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::ICMPV4),
        )
    })
    .expect("ICMP socket in a");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    for seq in 0..3u16 {
        let mut request = vec![8, 0, 0, 0, 0, 0];
        request.extend_from_slice(&seq.to_be_bytes());
        request.extend_from_slice(b"netns-test");
        socket
            .send_to(&request, &SocketAddr::from((B, 0)).into())
            .expect("send echo");
        let mut reply = [std::mem::MaybeUninit::new(0u8); 128];
        let n = socket.recv(&mut reply).expect("an echo reply");
        assert!(n >= 8);
    }
    link.engine.flush().expect("flush");
    let output = std::process::Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .output();
    let output = match output {
        Ok(output) => output,
        Err(error) => panic!("cannot run tshark ({error}); install it: apt-get install -y tshark"),
    };
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(text.matches("Echo (ping) request").count(), 3, "{text}");
    assert_eq!(text.matches("Echo (ping) reply").count(), 3, "{text}");
    let _ = std::fs::remove_file(path);
}

#[crate::test]
fn tcp_crosses_with_tx_checksum_offload_off() {
    let link = Fixture::new(Default::default(), 1, None);
    set_tx_checksum(&link.a, "eth0", false).expect("ethtool -K eth0 tx off in a");
    set_tx_checksum(&link.b, "eth0", false).expect("ethtool -K eth0 tx off in b");
    let data = pattern(1 << 20);
    assert!(link.tcp_transfer(&data) == *data);
    let error = set_tx_checksum(&link.a, "nosuchdev", false).unwrap_err();
    assert!(
        format!("{error:?}").contains("ethtool -K nosuchdev tx off"),
        "{error:?}"
    );
}

#[crate::test]
fn netem_delays_packets_or_says_precisely_why_it_cannot() {
    let link = Fixture::new(Default::default(), 1, None);
    let options = NetemOptions::from_conditions(&Conditions::new().delay(ms(10)), 1)
        .expect("netem can delay");
    let apply = |node: usize, name: &'static str| {
        let handle = link.netlink[node].handle.clone();
        let options = options.clone();
        link.ctl
            .block_on(async move { apply_netem(&handle, name, IFINDEX, "eth0", &options).await })
    };
    match netem_available() {
        Ok(()) => {
            apply(0, "a").expect("netem on a's eth0");
            apply(2, "b").expect("netem on b's eth0");
            let median = median(link.pings(20));
            assert!(median >= ms(20) && median <= ms(21), "median {median:?}");
        }
        Err(probed) => {
            // No netem on this kernel: applying it must fail the same precise way, not pass
            // silently unimpaired.
            let applied = apply(0, "a").expect_err("netem applied although the probe found none");
            for error in [&probed, &applied] {
                let Error::Unsupported { feature, reason } = error else {
                    panic!("{error:?}")
                };
                assert_eq!(feature, "sch_netem");
                assert!(
                    reason.contains("ENOENT") && reason.contains("modprobe sch_netem"),
                    "{reason}"
                );
            }
            eprintln!("netem is missing here; checked how that is reported instead: {probed}");
        }
    }
}
