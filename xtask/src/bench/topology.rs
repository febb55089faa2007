//! Topology bring-up: a star of 10 and of 100 hosts on one switch, built, checked for all-pairs
//! reachability and torn down, side by side with Mininet (LinuxBridge, no controller) where it
//! is installed, run inside a scratch network namespace so that the root namespace is never
//! touched. Before that, validation alone at 100, 1000 and 5000 nodes (see `validation`).

use std::process::Command;
use std::time::{Duration, Instant};

use netns_test::{Link, Topology};

use crate::util::{Result, median, ms};

/// The star: hosts `h1..hN` on switch `sw`, in 10.0.0.0/16, with static neighbour entries
/// (as Mininet's `--arp`): all-pairs on a hundred hosts needs 9900 of them, far more than the
/// kernel's host-wide table takes when they are learnt by ARP.
fn star(hosts: usize) -> Topology {
    let mut builder = Topology::builder().switch("sw").static_arp();
    for i in 1..=hosts {
        let name = format!("h{i}");
        builder = builder
            .host(&name)
            .link(Link::new(&name, "sw").addr(&name, format!("10.0.{}.{}/16", i / 250, i % 250 + 1)));
    }
    builder.build().expect("the star is valid")
}

/// Median wall time of building and tearing down the star (a whole sandbox run: child start,
/// network up, body, exit).
fn netns_up_down(hosts: usize, runs: usize) -> Result<Duration> {
    let topology = star(hosts);
    let mut samples = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        netns_test::sandbox(topology.clone(), |_| ()).map_err(|e| format!("{e:?}"))?;
        samples.push(started.elapsed());
    }
    Ok(median(&mut samples))
}

/// Mininet's start, pingAll and stop for the same star (static ARP too), or why it could not
/// run.
fn mininet(hosts: usize) -> std::result::Result<(f64, f64, f64), String> {
    // Mininet says which program it misses only in lines above the last, which is its $PATH.
    for (program, package) in [("mnexec", "mininet"), ("brctl", "bridge-utils"), ("ping", "iputils-ping")] {
        if !super::installed(program) {
            return Err(format!(
                "`{program}` is not installed ({package}); the comparison needs \
                 `apt-get install mininet bridge-utils iputils-ping`"
            ));
        }
    }
    let script = r#"
import sys, time
from mininet.net import Mininet
from mininet.topo import SingleSwitchTopo
from mininet.nodelib import LinuxBridge
from mininet.log import setLogLevel
setLogLevel('error')
n = int(sys.argv[1])
t0 = time.monotonic()
net = Mininet(topo=SingleSwitchTopo(n), switch=LinuxBridge, controller=None, autoSetMacs=True, autoStaticArp=True)
net.start()
t1 = time.monotonic()
net.pingAll(timeout='1')
t2 = time.monotonic()
net.stop()
t3 = time.monotonic()
print((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
"#;
    // Debian's Python, where the mininet package installs; another python3 may come first in
    // PATH.
    let python =
        if std::path::Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" };
    let output = Command::new("unshare")
        .args(["--net", "--mount", "--propagation", "private", python, "-c", script])
        .arg(hosts.to_string())
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(stderr.lines().last().unwrap_or("mininet failed").to_string());
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let figures: Vec<f64> = text.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    match figures[..] {
        [start, pingall, stop] => Ok((start, pingall, stop)),
        _ => Err(format!("unexpected mininet output: {text}")),
    }
}

/// Median time of one `ping_all` over the star (every host pings every other host's address
/// once, all at once), each run in its own sandbox.
fn netns_all_pairs(hosts: usize, runs: usize) -> Result<Duration> {
    let mut samples = Vec::new();
    for _ in 0..runs {
        let elapsed: f64 = netns_test::sandbox_with(star(hosts), |net| {
            let started = Instant::now();
            let matrix = net.ping_all().map_err(|e| format!("{e:?}"))?;
            let elapsed = started.elapsed();
            if !matrix.is_all_reachable() {
                return Err(format!("not every pair is reachable:\n{matrix}"));
            }
            Ok(elapsed.as_secs_f64())
        })
        .map_err(|e| format!("all-pairs ping over {hosts} hosts: {e:?}"))?;
        samples.push(Duration::from_secs_f64(elapsed));
    }
    Ok(median(&mut samples))
}

pub(crate) fn run(quick: bool) -> Result {
    // Validation alone, in this process: sandbox children, which run this code again, skip it.
    let validation = if super::in_sandbox_child() { String::new() } else { super::validation::run(quick)? };
    let runs = if quick { 3 } else { 15 };
    let up10 = netns_up_down(10, runs)?;
    let up100 = netns_up_down(100, runs)?;
    let pairs10 = netns_all_pairs(10, runs)?;
    let pairs100 = netns_all_pairs(100, runs)?;
    println!("topology: star on one switch, median of {runs} runs");
    println!(
        "  netns-test  10 hosts: up + down {:>8} ms, all pairs ({:>4} pings) {:>8} ms",
        ms(up10),
        10 * 9,
        ms(pairs10)
    );
    println!(
        "  netns-test 100 hosts: up + down {:>8} ms, all pairs ({:>4} pings) {:>8} ms",
        ms(up100),
        100 * 99,
        ms(pairs100)
    );
    let mut ratios = Vec::new();
    for (hosts, up, pairs) in [(10, up10, pairs10), (100, up100, pairs100)] {
        match mininet(hosts) {
            Ok((start, pingall, stop)) => {
                let ours = (up + pairs).as_secs_f64() * 1e3;
                let theirs = start + pingall + stop;
                println!(
                    "  mininet   {hosts:>3} hosts: start {start:.0} ms, pingAll {pingall:.0} ms, stop {stop:.0} ms \
                     -> netns-test is {:.0}x faster overall (up {:.0}x, all pairs {:.0}x)",
                    theirs / ours,
                    (start + stop) / (up.as_secs_f64() * 1e3),
                    pingall / (pairs.as_secs_f64() * 1e3),
                );
                ratios.push(format!(" mininet{hosts}_ms={theirs:.0} speedup{hosts}={:.0}", theirs / ours));
            }
            Err(reason) => println!("  mininet   {hosts:>3} hosts: not measured here ({reason})"),
        }
    }
    println!(
        "topology: hosts10_ms={} hosts100_ms={} allpairs100_ms={}{}{validation}",
        ms(up10),
        ms(up100),
        ms(pairs100),
        ratios.concat()
    );
    Ok(())
}
