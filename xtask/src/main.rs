//! Repository automation, reached as `cargo xtask <command>`: the same commands for people and
//! for CI.

mod bench;
mod ci;
mod doctor;
mod layers;
mod recipes;
mod sudo_cargo;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "netns-test repository automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// What CI runs: the layer order, fmt, clippy, tests (root and rootless), docs, the
    /// root-namespace check.
    Ci(ci::Args),
    /// Checks what this machine can do: privileges, user namespaces, kernel features.
    Doctor,
    /// Benchmarks that compare side by side in one run and print ratios.
    Bench(bench::Args),
    /// Checks that the library's modules import only from their layer or below (ARCHITECTURE.md).
    Layers,
    /// The sharding steps of `ci` alone: the nextest partitions' coverage and the sudo-mode run
    /// of the archive as `netnstest` (root only).
    Sharding,
    /// The sudo-mode step of `ci` alone: `NETNS_TEST_MODE=sudo cargo test` as `netnstest`,
    /// with a checkout, a target directory and a toolchain of its own (root only).
    SudoCargoTest,
    /// Runs N cycles of the benchmarks' floor (the seed's kernel work in-process, no framework)
    /// one after the other and prints each one's time in nanoseconds.
    #[command(hide = true)]
    FloorCycles {
        /// How many cycles.
        cycles: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ci(args) => ci::run(&args),
        Command::Doctor => doctor::run(),
        Command::Bench(args) => bench::run(&args),
        Command::Layers => layers::run(),
        Command::Sharding => ci::sharding(),
        Command::SudoCargoTest => sudo_cargo::run(),
        Command::FloorCycles { cycles } => bench::floor_cycles(cycles),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}
