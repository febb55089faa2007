//! `cargo xtask bench [overhead|ping|topology|link|suite|all]`: side-by-side comparisons in one run,
//! each ending with one `name: key=value ...` summary line.

mod floor;
mod link;
mod overhead;
mod ping;
mod suite;
mod topology;

use clap::ValueEnum;

use crate::util::Result;

/// Which benchmark to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Which {
    /// Cost per test: plain #[test], #[netns_test] and the seed's shell procedure, beside the floor.
    Overhead,
    /// Ping rate and RTT: our pinger against iputils `ping -i 0` on the same veth pair.
    Ping,
    /// A 10- and a 100-host star: bring-up, all-pairs reachability, teardown; Mininet beside.
    Topology,
    /// Link conditions: engine throughput against a plain veth, delay and loss accuracy.
    Link,
    /// Suite throughput: 1000 seed #[netns_test]s and 1000 plain tests under cargo test and
    /// nextest, beside 1000 floor cycles.
    Suite,
    /// Everything.
    All,
}

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The benchmark to run.
    #[arg(value_enum, default_value = "all")]
    which: Which,
    /// Fewer iterations, for a quick check that the benchmark works.
    #[arg(long)]
    quick: bool,
}

pub(crate) fn run(args: &Args) -> Result {
    let all = args.which == Which::All;
    // Sandboxed benchmarks re-execute this program, whose children run the code before their
    // `sandbox` call again (earlier `sandbox` calls return at once): run them before the rest,
    // or each child of `all` would repeat the overhead benchmark.
    if all || args.which == Which::Ping {
        ping::run(args.quick)?;
    }
    if all || args.which == Which::Topology {
        topology::run(args.quick)?;
    }
    if all || args.which == Which::Link {
        link::run(args.quick)?;
    }
    if all || args.which == Which::Overhead {
        overhead::run(args.quick)?;
    }
    if all || args.which == Which::Suite {
        suite::run(args.quick)?;
    }
    Ok(())
}

/// `cargo xtask floor-cycles N` (see [`floor`]).
pub(crate) fn floor_cycles(cycles: usize) -> Result {
    floor::serve(cycles)
}
