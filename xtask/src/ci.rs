//! `cargo xtask ci`: everything CI checks.

use crate::util::Result;

#[derive(clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(_args: &Args) -> Result {
    Err("ci is not written yet".into())
}
