//! NAT: the time to bring up the two-NATs topology of the gallery (`tests/topologies/
//! hole-punch.toml`) against the same topology without its `[nat]` table, and UDP throughput
//! from a peer behind a NAT to the rendezvous server against the same path routed plainly.
//!
//! Every NAT behaviour is served by the user-space translator in the link engine (see
//! ARCHITECTURE.md, "NAT: which path serves which behaviour"): there is no kernel path to
//! measure, and `udp_ratio_kernel` is `n/a`.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use netns_test::{Network, Topology, sandbox, sandbox_with};

use crate::util::{Result, median, ms, root};

/// The gallery's two-NATs topology, with its NATs or without them.
fn two_nats(with_nat: bool) -> Result<Topology> {
    let path = root().join("tests/topologies/hole-punch.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let text = if with_nat { text } else { text.split("\n[nat]").next().unwrap_or_default().to_string() };
    Topology::from_toml(&text, &path).map_err(|e| e.to_string())
}

/// Median wall time of a whole sandbox run (child start, bring-up, teardown) of `topology`.
fn up_time(topology: &Topology, rounds: usize) -> Result<Duration> {
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        sandbox(topology.clone(), |_| ()).map_err(|e| format!("{e:?}"))?;
        samples.push(started.elapsed());
    }
    Ok(median(&mut samples))
}

/// Sends `count` datagrams of 1400 bytes from alice to the rendezvous server as fast as they
/// go; the goodput in Mbit/s the server sees, from its first datagram to its last.
fn udp_goodput(net: &Network, count: u64) -> std::result::Result<f64, String> {
    let server =
        net.node("rendezvous").run(|| UdpSocket::bind("192.0.2.2:9000")).map_err(|e| e.to_string())?;
    server.set_read_timeout(Some(Duration::from_millis(500))).map_err(|e| e.to_string())?;
    let receiver = std::thread::spawn(move || {
        let mut buffer = [0u8; 2048];
        let (mut bytes, mut first, mut last) = (0u64, None, Instant::now());
        while let Ok(n) = server.recv(&mut buffer) {
            first.get_or_insert_with(Instant::now);
            last = Instant::now();
            bytes += n as u64;
        }
        (bytes, first.map(|first| last - first))
    });
    let client = UdpSocket::bind("192.168.1.2:9000").map_err(|e| e.to_string())?;
    let payload = [0x5au8; 1400];
    for _ in 0..count {
        // A full socket buffer is dropped traffic, as on a real path.
        let _ = client.send_to(&payload, "192.0.2.2:9000");
    }
    let (bytes, span) = receiver.join().map_err(|_| "the receiver panicked".to_string())?;
    match span {
        Some(span) if !span.is_zero() => Ok(bytes as f64 * 8.0 / span.as_secs_f64() / 1e6),
        _ => Err(format!("the server received {bytes} bytes, too few to measure")),
    }
}

fn goodput(topology: &Topology, count: u64) -> Result<f64> {
    sandbox_with(topology.clone(), move |net| udp_goodput(net, count)).map_err(|e| format!("{e:?}"))
}

pub(crate) fn run(quick: bool) -> Result {
    let (rounds, count) = if quick { (3, 20_000) } else { (11, 200_000) };
    let (nat, plain) = (two_nats(true)?, two_nats(false)?);
    let up_nat = up_time(&nat, rounds)?;
    let up_plain = up_time(&plain, rounds)?;
    println!("bring-up of the two-NATs topology: {} ms with NATs, {} ms without", ms(up_nat), ms(up_plain));
    let through_nat = goodput(&nat, count)?;
    let routed = goodput(&plain, count)?;
    let ratio = through_nat / routed;
    println!(
        "UDP from behind nat-a to the rendezvous server: {through_nat:.0} Mbit/s through the user-space NAT, \
         {routed:.0} Mbit/s routed plainly ({ratio:.2}x); no NAT is served by the kernel"
    );
    println!(
        "nat: up_ms={:.1} up_plain_ms={:.1} udp_ratio_kernel=n/a udp_ratio_userspace={ratio:.2}",
        up_nat.as_secs_f64() * 1e3,
        up_plain.as_secs_f64() * 1e3
    );
    Ok(())
}
