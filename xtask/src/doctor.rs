//! `cargo xtask doctor`: what this machine can do.

use crate::util::Result;

pub(crate) fn run() -> Result {
    for check in netns_test::probe::host_checks() {
        println!("{check}");
    }
    Ok(())
}
