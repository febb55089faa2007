//! Topology bring-up: a star of 10 and of 100 hosts on one switch, built, checked for all-pairs
//! reachability and torn down, side by side with Mininet (LinuxBridge, no controller) where it
//! is installed, run inside a scratch network namespace so that the root namespace is never
//! touched.

use std::process::Command;
use std::time::{Duration, Instant};

use netns_test::{Link, Topology};

use crate::util::{Result, median, ms};

/// The star: hosts `h1..hN` on switch `sw`, in 10.0.0.0/16.
fn star(hosts: usize) -> Topology {
    let mut builder = Topology::builder().switch("sw");
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

/// Mininet's start, pingAll and stop for the same star, or why it could not run.
fn mininet(hosts: usize) -> std::result::Result<(f64, f64, f64), String> {
    let script = r#"
import sys, time
from mininet.net import Mininet
from mininet.topo import SingleSwitchTopo
from mininet.nodelib import LinuxBridge
from mininet.log import setLogLevel
setLogLevel('error')
n = int(sys.argv[1])
t0 = time.monotonic()
net = Mininet(topo=SingleSwitchTopo(n), switch=LinuxBridge, controller=None, autoSetMacs=True)
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

pub(crate) fn run(quick: bool) -> Result {
    let runs = if quick { 3 } else { 15 };
    let up10 = netns_up_down(10, runs)?;
    let up100 = netns_up_down(100, runs)?;
    println!("topology: star on one switch, median of {runs} runs (up + down, a whole child process)");
    println!("  netns-test  10 hosts: {:>9} ms", ms(up10));
    println!("  netns-test 100 hosts: {:>9} ms", ms(up100));
    for hosts in [10, 100] {
        match mininet(hosts) {
            Ok((start, pingall, stop)) => println!(
                "  mininet   {hosts:>3} hosts: start {start:.0} ms, pingAll {pingall:.0} ms, stop {stop:.0} ms (up + down {:.0} ms)",
                start + stop
            ),
            Err(reason) => println!("  mininet   {hosts:>3} hosts: not measured ({reason})"),
        }
    }
    println!("topology: hosts10_ms={} hosts100_ms={}", ms(up10), ms(up100));
    Ok(())
}
