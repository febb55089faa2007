//! Topology validation alone (`TopologyBuilder::build` and `Topology::from_toml`: names,
//! addresses, subnets and automatic routes, nothing created), for three shapes at 100, 1000
//! and 5000 nodes:
//!
//! - **chain**: `n` routers in a line, each link its own /24, automatic routes. Every router
//!   needs a route to nearly every subnet, so the plan holds about n² routes (the two routers
//!   at each end send everything one way and get one default route each).
//! - **star**: a hub router with `n / 2` edge routers around it and one host behind each (n + 1
//!   nodes), automatic routes: edge routers and hosts have a single uplink and get one default
//!   route each; the hub gets one route per host subnet.
//! - **switch**: `n` hosts on switches of at most 500 ports (one switch up to 500 hosts, ten for
//!   5000), one /16 per switch, default interface names, and a router with a port on each
//!   switch, automatic routes (every host gets one default route through it).
//!
//! Each figure is the median of several builds of an unchanged builder, in the build `cargo
//! xtask` itself uses (the workspace's dev profile, `opt-level = 1`). The chain is also read
//! from a topology file (`from_toml`: TOML parsing, then the same validation), which shows
//! whether parsing itself grows faster than the file.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use netns_test::{Link, Topology, TopologyBuilder};

use crate::util::{Result, median, ms};

/// The sizes measured, in nodes.
const SIZES: [usize; 3] = [100, 1000, 5000];
/// The most hosts on one switch of the switch shape.
const PORTS: usize = 500;

/// The address of the `k`-th /24 of 10.0.0.0/8, host `host`.
fn in_link(k: usize, host: u8) -> String {
    format!("10.{}.{}.{host}/24", k / 256, k % 256)
}

fn chain(n: usize) -> TopologyBuilder {
    let mut builder = Topology::builder();
    for i in 0..n {
        builder = builder.router(format!("r{i}"));
    }
    for i in 1..n {
        builder = builder
            .link(Link::new(format!("r{}", i - 1), format!("r{i}")).addrs(in_link(i, 1), in_link(i, 2)));
    }
    builder.auto_routes()
}

/// The chain as a topology file.
fn chain_file(n: usize) -> String {
    let mut text = String::from("auto_routes = true\n\n[nodes]\n");
    for i in 0..n {
        writeln!(text, "r{i} = \"router\"").expect("writing to a string");
    }
    for i in 1..n {
        write!(
            text,
            "\n[[links]]\na = \"r{}\"\nb = \"r{i}\"\naddrs = {{ r{} = \"{}\", r{i} = \"{}\" }}\n",
            i - 1,
            i - 1,
            in_link(i, 1),
            in_link(i, 2)
        )
        .expect("writing to a string");
    }
    text
}

fn star(n: usize) -> TopologyBuilder {
    let mut builder = Topology::builder().router("hub");
    for e in 0..n / 2 {
        let (edge, host) = (format!("e{e}"), format!("h{e}"));
        builder = builder
            .router(&edge)
            .host(&host)
            .link(Link::new("hub", &edge).addrs(in_link(2 * e, 1), in_link(2 * e, 2)))
            .link(Link::new(&edge, &host).addrs(in_link(2 * e + 1, 1), in_link(2 * e + 1, 2)));
    }
    builder.auto_routes()
}

fn switch(n: usize) -> TopologyBuilder {
    let switches = n.div_ceil(PORTS);
    let mut builder = Topology::builder().router("core");
    for s in 0..switches {
        let name = format!("sw{s}");
        builder =
            builder.switch(&name).link(Link::new("core", &name).addr("core", format!("10.{s}.255.254/16")));
    }
    for h in 0..n {
        let (s, k) = (h / PORTS, h % PORTS);
        let name = format!("h{h}");
        builder = builder.host(&name).link(
            Link::new(&name, format!("sw{s}")).addr(&name, format!("10.{s}.{}.{}/16", k / 250, k % 250 + 1)),
        );
    }
    builder.auto_routes()
}

/// The median time of `runs` calls of `validate`.
fn time<T>(runs: usize, mut validate: impl FnMut() -> std::result::Result<T, String>) -> Result<Duration> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let topology = validate()?;
        samples.push(started.elapsed());
        drop(topology);
    }
    Ok(median(&mut samples))
}

/// Prints the figures and returns the summary keys for the topology benchmark's last line.
pub(crate) fn run(quick: bool) -> Result<String> {
    let runs = |n: usize| match (quick, n) {
        (true, _) => 1,
        (false, 5000..) => 3,
        (false, _) => 5,
    };
    let build = |builder: &TopologyBuilder| builder.clone().build().map_err(|e| e.to_string());
    let how = if quick { "one run each" } else { "median of 5 runs, 3 at 5000 nodes" };
    println!("topology validation alone (build or from_toml; nothing created), {how}");
    let mut keys = String::new();
    for n in SIZES {
        let (c, s, w) = (chain(n), star(n), switch(n));
        let chain_ms = time(runs(n), || build(&c))?;
        let file = chain_file(n);
        let file_ms = time(runs(n), || Topology::from_toml(&file, "chain.toml").map_err(|e| e.to_string()))?;
        let star_ms = time(runs(n), || build(&s))?;
        let switch_ms = time(runs(n), || build(&w))?;
        println!(
            "  {n:>4} nodes: chain {:>9} ms (from a {:>4} kB file {:>9} ms), star {:>8} ms, switch {:>8} ms",
            ms(chain_ms),
            file.len() / 1000,
            ms(file_ms),
            ms(star_ms),
            ms(switch_ms)
        );
        if n == 1000 {
            write!(
                keys,
                " validate1000_chain_ms={} validate1000_star_ms={} validate1000_switch_ms={}",
                ms(chain_ms),
                ms(star_ms),
                ms(switch_ms)
            )
            .expect("writing to a string");
        }
    }
    Ok(keys)
}
