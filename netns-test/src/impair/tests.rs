//! Traffic through the engine, for real, over the laboratory link of [`super::lab`].

use std::net::{IpAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::lab::{IFINDEX, Lab, in_node};
use super::netem::{NetemOptions, apply as apply_netem, netem_available};

use super::packet::set_tx_checksum;
use crate::conditions::{Conditions, ValidConditions};
use crate::error::Error;

/// Keeps the tests that measure time from sharing the machine's CPUs with the tests that
/// saturate them: libtest runs tests in parallel, and on two CPUs a TCP transfer at full speed
/// delays the engine's wake-ups by a scheduler tick (4 ms) unless it runs with real-time
/// priority, which rootless mode cannot give it. A file lock, since every test body runs in
/// its own child process. Held until dropped.
fn cpu_exclusive() -> nix::fcntl::Flock<std::fs::File> {
    let path = std::env::temp_dir().join("netns-test-link-cpu.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        // Created by another user (root and rootless runs share /tmp): reading is enough to lock.
        .or_else(|_| std::fs::File::open(&path))
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .unwrap_or_else(|(_, errno)| panic!("cannot lock {}: {errno}", path.display()))
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
    Arc::new((0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 11)) as u8).collect())
}

/// A capture file of its own: test children are PID 1 or 2 of their own PID namespace, so the
/// process id does not tell concurrent runs apart; the clock does.
fn capture_path(name: &str) -> PathBuf {
    let unique =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    std::env::temp_dir().join(format!("netns-test-link-{name}-{unique}.pcap"))
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
    let _cpu = cpu_exclusive();
    let link = Lab::new(Default::default(), 1, None);
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
    let [ab, ba] = link.counters();
    assert!(ab.bytes_out >= 10 << 20 && ab.frames_out >= (10 << 20) / 1514, "{ab}");
    assert_eq!((ab.lost, ab.queue_drops, ab.send_errors, ba.send_errors), (0, 0, 0, 0), "{ab} / {ba}");
}

#[crate::test]
fn arp_and_neighbour_discovery_cross_the_engine() {
    let path = capture_path("arp");
    let link = Lab::new(Default::default(), 1, Some(path.clone()));
    let v4: IpAddr = "10.0.0.3".parse().expect("address");
    let v6: IpAddr = "fd00::2".parse().expect("address");
    link.add_address(true, "10.0.0.3/24".parse().expect("prefix"));
    link.add_address(true, "fd00::2/64".parse().expect("prefix"));
    link.add_address(false, "fd00::1/64".parse().expect("prefix"));
    for target in [v4, v6] {
        let listener = in_node(&link.b, || TcpListener::bind((target, 5003))).expect("listener in b");
        let accepted = thread::spawn(move || listener.accept().map(|_| ()));
        connect_patiently(&link, target);
        accepted.join().expect("accept thread").expect("accept");
    }
    link.flush().expect("flush");
    let frames = read_pcap(&path);
    let arp = |op: u8| frames.iter().any(|f| f.len() >= 22 && f[12..14] == [0x08, 0x06] && f[21] == op);
    // ICMPv6 (next header 58) of a given type, without extension headers.
    let nd = |kind: u8| {
        frames.iter().any(|f| f.len() > 54 && f[12..14] == [0x86, 0xdd] && f[20] == 58 && f[54] == kind)
    };
    assert!(arp(1) && arp(2), "ARP request and reply crossed");
    assert!(nd(135) && nd(136), "neighbour solicitation and advertisement crossed");
    let _ = std::fs::remove_file(path);
}

/// Connects from `a` to port 5003 of `target`, retrying for 20 s. The neighbour table is
/// shared by every namespace on the machine, and a large topology elsewhere can fill it for a
/// while ("neighbor table overflow" in the kernel log): then no ARP request is even sent.
fn connect_patiently(link: &Lab, target: IpAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempt =
            in_node(&link.a, || TcpStream::connect_timeout(&(target, 5003).into(), Duration::from_secs(2)));
        match attempt {
            Ok(_) => return,
            Err(error) if Instant::now() >= deadline => panic!(
                "connecting to {target} through the engine: {error}; counters {:?}. If the kernel log \
                 says \"neighbor table overflow\", the neighbour table shared by all namespaces \
                 (net.ipv4.neigh.default.gc_thresh3) was full",
                link.counters()
            ),
            Err(_) => {}
        }
    }
}

#[crate::test]
fn tcp_superframes_cross_a_delayed_rate_limited_link_whole_and_intact() {
    let _cpu = cpu_exclusive();
    // Delay and rate only: nothing acts on single packets, so TSO superframes cross whole
    // (held in the delay, paced by the rate limiter as the segments they stand for).
    let shaped = Conditions::new().delay(ms(5)).rate(200_000_000).limit(5000);
    let link = Lab::new([shaped, Conditions::new().delay(ms(5))], 3, None);
    let data = pattern(8 << 20);
    let start = Instant::now();
    let received = link.tcp_transfer(&data);
    let elapsed = start.elapsed();
    assert!(
        received == *data,
        "received {} bytes, not the {} sent (or not the same)",
        received.len(),
        data.len()
    );
    let [ab, _] = link.settle();
    assert!(ab.superframes > 0 && ab.frames_in > 5600, "counted in wire packets: {ab}");
    // 8 MiB at 200 Mbit/s take at least 0.33 s on the wire.
    assert!(elapsed >= Duration::from_millis(330), "{elapsed:?}");
    assert_eq!((ab.lost, ab.send_errors), (0, 0), "{ab}");
}

#[crate::test]
fn tcp_crosses_with_tx_checksum_offload_off() {
    let _cpu = cpu_exclusive();
    let link = Lab::new(Default::default(), 1, None);
    set_tx_checksum(&link.a, "eth0", false).expect("ethtool -K eth0 tx off in a");
    set_tx_checksum(&link.b, "eth0", false).expect("ethtool -K eth0 tx off in b");
    let data = pattern(1 << 20);
    assert!(link.tcp_transfer(&data) == *data);
    let error = set_tx_checksum(&link.a, "nosuchdev", false).unwrap_err();
    assert!(format!("{error:?}").contains("ethtool -K nosuchdev tx off"), "{error:?}");
}

#[crate::test]
fn netem_delays_packets_or_says_precisely_why_it_cannot() {
    let _cpu = cpu_exclusive();
    let link = Lab::new(Default::default(), 1, None);
    let options =
        NetemOptions::from_conditions(&ValidConditions::new(Conditions::new().delay(ms(10))).unwrap(), 1)
            .expect("netem can delay");
    let apply = |node: usize, name: &'static str| {
        let handle = link.netlink[node].handle.clone();
        let options = options.clone();
        link.netlink_rt.block_on(async move { apply_netem(&handle, name, IFINDEX, "eth0", &options).await })
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
                let Error::Unsupported { feature, reason } = error else { panic!("{error:?}") };
                assert_eq!(feature, "sch_netem");
                assert!(reason.contains("ENOENT") && reason.contains("modprobe sch_netem"), "{reason}");
            }
            eprintln!("netem is missing here; checked how that is reported instead: {probed}");
        }
    }
}
