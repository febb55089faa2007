//! Traffic through the engine, for real, over the laboratory link of [`super::lab`].

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::lab::{A, B, IFINDEX, Lab, wait_until};
use super::packet::in_namespace;
use super::*;
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
        let listener = in_namespace(&link.b, || TcpListener::bind((target, 5003))).expect("listener in b");
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
        let attempt = in_namespace(&link.a, || {
            TcpStream::connect_timeout(&(target, 5003).into(), Duration::from_secs(2))
        });
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
fn ten_ms_each_way_gives_a_twenty_ms_round_trip() {
    let _cpu = cpu_exclusive();
    let delay = Conditions::new().delay(ms(10));
    let link = Lab::new([delay.clone(), delay], 1, None);
    let rtts = link.pings(30);
    let median = median(rtts.clone());
    assert!(median >= ms(20) && median <= ms(21), "median {median:?} of {rtts:?}");
    assert!(rtts.iter().all(|rtt| *rtt >= ms(20)), "{rtts:?}");
}

#[crate::test]
fn ten_percent_loss_lands_in_the_binomial_bound() {
    let link = Lab::new([Conditions::new().loss(0.1), Conditions::new()], 2024, None);
    link.echo_server();
    let outcomes = link.outcomes(2000, Duration::from_micros(200));
    let lost = outcomes.iter().filter(|r| !**r).count();
    // n = 2000, p = 0.1: mean 200, σ = 13.4; 99 % two-sided bound ±2.576 σ.
    assert!((166..=234).contains(&lost), "{lost} of 2000 probes lost");
    let [ab, ba] = link.counters();
    assert_eq!(ab.lost as usize, lost, "{ab}");
    assert_eq!((ab.frames_in, ba.lost), (2000, 0), "{ab} / {ba}");
}

#[crate::test]
fn the_same_seed_replays_the_same_outcomes() {
    let conditions = || [Conditions::new().loss(0.2), Conditions::new().loss(0.2)];
    let run = |seed| {
        let link = Lab::new(conditions(), seed, None);
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
    let _cpu = cpu_exclusive();
    let path = capture_path("tcp");
    let lossy = Conditions::new().delay(ms(5)).loss(0.01).reorder(0.1);
    let link = Lab::new([lossy.clone(), lossy], 99, Some(path.clone()));
    let data = pattern(10 << 20);
    let received = link.tcp_transfer(&data);
    assert!(
        received == *data,
        "received {} bytes, not the {} sent (or not the same)",
        received.len(),
        data.len()
    );
    let [ab, ba] = link.settle();
    assert!(ab.lost > 0 && ab.reordered > 0 && ba.lost > 0, "{ab} / {ba}");
    assert_eq!((ab.superframes, ba.superframes), (0, 0), "loss acts on wire packets: {ab} / {ba}");
    link.flush().expect("flush");
    // Offloads are undone on an impaired link: every frame fits the 1500-byte MTU.
    let frames = read_pcap(&path);
    let largest = frames.iter().map(Vec::len).max().unwrap_or(0);
    assert!(largest <= 1514, "a {largest}-byte frame crossed");
    assert_eq!(frames.len() as u64, ab.frames_out + ba.frames_out);
    let _ = std::fs::remove_file(path);
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
fn a_rate_limit_of_10_mbit_measures_within_5_percent() {
    let _cpu = cpu_exclusive();
    const RATE: f64 = 10e6;
    const FRAME: usize = 1514;
    let link = Lab::new([Conditions::new().rate(10_000_000), Conditions::new()], 1, None);
    let receiver = in_namespace(&link.b, || UdpSocket::bind((B, 9000))).expect("receiver in b");
    receiver.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
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
    assert_eq!(link.counters()[0].queue_drops, 0);
}

#[crate::test]
fn duplicates_and_corruption_show_in_counters_and_capture() {
    let path = capture_path("dup");
    let link =
        Lab::new([Conditions::new().duplicate(0.2).corrupt(0.2), Conditions::new()], 5, Some(path.clone()));
    // Bound so that `b` answers no datagram with a port-unreachable error.
    let _receiver = in_namespace(&link.b, || UdpSocket::bind((B, 9001))).expect("receiver in b");
    let sender = in_namespace(&link.a, || UdpSocket::bind((A, 0))).expect("sender in a");
    let count = 300u64;
    for seq in 0..count {
        let mut datagram = vec![0u8; 100];
        datagram[..8].copy_from_slice(&seq.to_be_bytes());
        sender.send_to(&datagram, (B, 9001)).expect("send");
    }
    let counters = || link.counters()[0];
    wait_until("every datagram through the link", Duration::from_secs(10), || {
        let ab = counters();
        ab.frames_in == count && ab.frames_out == count + ab.duplicated
    });
    let ab = counters();
    assert!(ab.duplicated > 20 && ab.corrupted > 20, "{ab}");
    link.flush().expect("flush");
    let frames = read_pcap(&path);
    let udp: Vec<&Vec<u8>> =
        frames.iter().filter(|f| f.len() == 142 && f[12..14] == [8, 0] && f[23] == 17).collect();
    // A flipped bit in the IP or UDP part breaks a checksum: that is how a receiver sees it.
    let broken = udp.iter().filter(|f| !ipv4_udp_checksums_hold(f)).count() as u64;
    assert!(broken >= ab.corrupted / 2 && broken <= ab.corrupted, "{broken} broken frames, {ab}");
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
    let _cpu = cpu_exclusive();
    let five = Conditions::new().delay(ms(5));
    let link = Lab::new([five.clone(), five], 1, None);
    let before = median(link.pings(10));
    for direction in Direction::BOTH {
        link.set_conditions(direction, Conditions::new().delay(ms(25))).expect("set");
    }
    let after = median(link.pings(10));
    assert!(before >= ms(10) && before <= ms(11), "before: {before:?}");
    assert!(after >= ms(50) && after <= ms(51), "after: {after:?}");
    let error = link.set_conditions(Direction::AToB, Conditions::new().loss(3.0)).unwrap_err();
    assert!(format!("{error:?}").contains("invalid condition loss = 3"), "{error:?}");
}

#[crate::test]
fn the_capture_opens_in_tshark_and_shows_the_ping() {
    let path = capture_path("icmp");
    let delay = Conditions::new().delay(ms(1));
    let link = Lab::new([delay.clone(), delay], 1, Some(path.clone()));
    // An ICMP echo socket: the kernel in `b` answers.
    let socket = in_namespace(&link.a, || {
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, Some(socket2::Protocol::ICMPV4))
    })
    .expect("ICMP socket in a");
    socket.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    for seq in 0..3u16 {
        let mut request = vec![8, 0, 0, 0, 0, 0];
        request.extend_from_slice(&seq.to_be_bytes());
        request.extend_from_slice(b"netns-test");
        socket.send_to(&request, &SocketAddr::from((B, 0)).into()).expect("send echo");
        let mut reply = [std::mem::MaybeUninit::new(0u8); 128];
        let n = socket.recv(&mut reply).expect("an echo reply");
        assert!(n >= 8);
    }
    link.flush().expect("flush");
    let output = std::process::Command::new("tshark").arg("-r").arg(&path).output();
    let output = match output {
        Ok(output) => output,
        Err(error) => panic!("cannot run tshark ({error}); install it: apt-get install -y tshark"),
    };
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "tshark failed: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(text.matches("Echo (ping) request").count(), 3, "{text}");
    assert_eq!(text.matches("Echo (ping) reply").count(), 3, "{text}");
    let _ = std::fs::remove_file(path);
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
        NetemOptions::from_conditions(&Conditions::new().delay(ms(10)), 1).expect("netem can delay");
    let apply = |node: usize, name: &'static str| {
        let handle = link.netlink[node].handle.clone();
        let options = options.clone();
        link.ctl.block_on(async move { apply_netem(&handle, name, IFINDEX, "eth0", &options).await })
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
