//! Link conditions: TCP throughput over a plain veth and over a link carried by the user-space
//! engine with no impairment (the engine's cost), and how exactly delay and loss are applied.
//!
//! Each measurement runs the seed topology, with or without conditions on its link, in its own
//! `netns_test::sandbox_with` child (this program re-executed in fresh namespaces), exactly as a
//! test would build it; nothing touches the host's network.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use netns_test::{Conditions, Link, Network, Topology, sandbox_with};

use crate::util::Result;

/// The seed topology, its link carried by the engine with `conditions` (a→b, b→a) when given.
fn seed_link(conditions: Option<(Conditions, Conditions)>) -> Topology {
    let mut link = Link::new("test0", "test1").ifnames("veth0", "veth1").addrs("1.1.1.2/24", "1.1.1.1/24");
    if let Some((forward, backward)) = conditions {
        link = link.conditions_from("test0", forward).conditions_from("test1", backward);
    }
    Topology::builder()
        .host("test0")
        .host("test1")
        .link(link)
        .random_seed(2024)
        .build()
        .expect("the seed topology is valid")
}

fn both(conditions: Conditions) -> Option<(Conditions, Conditions)> {
    Some((conditions.clone(), conditions))
}

/// Sends `total` bytes over TCP from test0 to test1 as fast as they go; Mbit/s from connect to
/// the last byte read.
fn tcp_throughput(net: &Network, total: u64) -> std::result::Result<f64, String> {
    let listener = net.node("test1").run(|| TcpListener::bind("1.1.1.1:5002")).map_err(|e| e.to_string())?;
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().map_err(|e| e.to_string())?;
        let mut buffer = vec![0u8; 1 << 18];
        let mut received = 0u64;
        loop {
            match stream.read(&mut buffer) {
                Ok(0) => return Ok::<_, String>((received, Instant::now())),
                Ok(n) => received += n as u64,
                Err(e) => return Err(e.to_string()),
            }
        }
    });
    let chunk = vec![0x5au8; 1 << 20];
    let start = Instant::now();
    let mut client = TcpStream::connect("1.1.1.1:5002").map_err(|e| e.to_string())?;
    let mut sent = 0u64;
    while sent < total {
        let n = chunk.len().min((total - sent) as usize);
        client.write_all(&chunk[..n]).map_err(|e| e.to_string())?;
        sent += n as u64;
    }
    client.shutdown(std::net::Shutdown::Write).map_err(|e| e.to_string())?;
    let (received, end) = server.join().map_err(|_| "the server panicked".to_string())??;
    if received != total {
        return Err(format!("the transfer was cut short: {received} of {total} bytes"));
    }
    Ok(total as f64 * 8.0 / (end - start).as_secs_f64() / 1e6)
}

fn throughput(conditions: Option<(Conditions, Conditions)>, total: u64) -> Result<f64> {
    sandbox_with(seed_link(conditions), move |net| tcp_throughput(net, total)).map_err(|e| format!("{e:?}"))
}

/// Which hook the per-packet throughput runs with, on both directions.
#[derive(Clone, Copy)]
enum HookKind {
    /// None: the engine's per-packet path alone.
    Without,
    /// A closure that passes every frame without looking at it.
    Noop,
    /// A closure that parses every frame (IPv4, then TCP ports and flags) before passing it.
    Parse,
}

/// TCP throughput over the per-packet path (1 ns of jitter each way) with `hook` on both
/// directions.
fn per_packet_throughput(hook: HookKind, total: u64) -> Result<f64> {
    use netns_test::packets::{Frame, HookContext, Verdict};
    let jitter = both(Conditions::new().jitter(Duration::from_nanos(1)));
    sandbox_with(seed_link(jitter), move |net| {
        let link = net.link("test0", "test1");
        let install = |node: &str| -> std::result::Result<_, String> {
            let guard = match hook {
                HookKind::Without => return Ok(None),
                HookKind::Noop => link.hook_from(node, |_: &Frame<'_>, _: &mut HookContext| Verdict::Pass),
                HookKind::Parse => link.hook_from(node, |frame: &Frame<'_>, _: &mut HookContext| {
                    let parsed = frame.ipv4().map(|ip| ip.get_source());
                    let tcp = frame.tcp().map(|tcp| (tcp.get_source(), tcp.get_destination()));
                    std::hint::black_box((parsed, tcp, frame.tcp_flags()));
                    Verdict::Pass
                }),
            };
            guard.map(Some).map_err(|e| e.to_string())
        };
        let _guards = (install("test0")?, install("test1")?);
        tcp_throughput(net, total)
    })
    .map_err(|e| format!("{e:?}"))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub(crate) fn run(quick: bool) -> Result {
    let (total, rounds, pings, probes): (u64, u32, u64, u64) =
        if quick { (256 << 20, 1, 20, 500) } else { (2 << 30, 3, 200, 2000) };
    let mut runs = Vec::new();
    for round in 1..=rounds {
        let veth = throughput(None, total)?;
        let engine = throughput(both(Conditions::new()), total)?;
        println!(
            "throughput round {round}: veth {veth:.0} Mbit/s, engine {engine:.0} Mbit/s ({:.2}x)",
            engine / veth
        );
        runs.push((veth, engine));
    }
    let veth_mbps = median(runs.iter().map(|r| r.0).collect());
    let engine_mbps = median(runs.iter().map(|r| r.1).collect());

    // A jitter of 1 ns changes nothing a test could see but sends every frame down the
    // per-packet path (cut into wire packets, checksums computed).
    let per_packet = per_packet_throughput(HookKind::Without, total / 4)?;
    println!("per-packet path (superframes cut into wire packets): engine {per_packet:.0} Mbit/s");
    // The same path with a hook on both directions: one that passes every frame untouched,
    // and one that parses every frame (IPv4, TCP ports and flags) first.
    let hook_noop = per_packet_throughput(HookKind::Noop, total / 4)?;
    let hook_parse = per_packet_throughput(HookKind::Parse, total / 4)?;
    let (hook_noop_ratio, hook_parse_ratio) = (hook_noop / per_packet, hook_parse / per_packet);
    println!(
        "per-packet path with hooks: no-op {hook_noop:.0} Mbit/s ({hook_noop_ratio:.2}x), \
         parsing {hook_parse:.0} Mbit/s ({hook_parse_ratio:.2}x)"
    );

    let delay = both(Conditions::new().delay(Duration::from_millis(10)));
    let (median_ms, p90_ms): (f64, f64) = sandbox_with(seed_link(delay), move |net| {
        let stats = net
            .local()
            .ping("1.1.1.1")
            .count(pings)
            .interval(Duration::from_millis(10))
            .timeout(Duration::from_secs(1))
            .run()?;
        let ms = |p: f64| stats.rtt_percentile(p).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
        Ok::<_, netns_test::Error>((ms(50.0), ms(90.0)))
    })
    .map_err(|e| format!("{e:?}"))?;
    println!("delay 10 ms each way: {pings} pings, median RTT {median_ms:.3} ms, p90 {p90_ms:.3} ms");

    let lossy = Some((Conditions::new().loss(0.1), Conditions::new()));
    let loss_pct: f64 = sandbox_with(seed_link(lossy), move |net| {
        let stats = net
            .local()
            .ping("1.1.1.1")
            .count(probes)
            .interval(Duration::from_micros(500))
            .timeout(Duration::from_millis(200))
            .run()?;
        Ok::<_, netns_test::Error>(stats.loss() * 100.0)
    })
    .map_err(|e| format!("{e:?}"))?;
    println!("loss 10 % test0->test1: {probes} probes, {loss_pct:.2} % lost");

    println!(
        "link: veth_mbps={veth_mbps:.0} engine_mbps={engine_mbps:.0} ratio={:.2} rtt_20ms_median_ms={median_ms:.3} \
         loss10_measured_pct={loss_pct:.2} hook_noop_ratio={hook_noop_ratio:.2} hook_parse_ratio={hook_parse_ratio:.2}",
        engine_mbps / veth_mbps
    );
    Ok(())
}
