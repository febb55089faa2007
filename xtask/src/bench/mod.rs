//! `cargo xtask bench [overhead|ping|topology|link|all]`: side-by-side comparisons in one run,
//! each ending with one `name: key=value ...` summary line.

mod link;
mod overhead;
mod topology;

use clap::ValueEnum;

use crate::util::Result;

/// Which benchmark to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Which {
    /// Cost per test: plain #[test], #[netns_test], and the seed's shell procedure.
    Overhead,
    /// A 10- and a 100-host star: bring-up, all-pairs reachability, teardown; Mininet beside.
    Topology,
    /// Link conditions: engine throughput against a plain veth, delay and loss accuracy.
    Link,
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
    if all || args.which == Which::Overhead {
        overhead::run(args.quick)?;
    }
    if all || args.which == Which::Topology {
        topology::run(args.quick)?;
    }
    if all || args.which == Which::Link {
        link::run(args.quick)?;
    }
    Ok(())
}
