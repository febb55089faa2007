//! Per-test overhead: a plain `#[test]`, a `#[netns_test]` with the seed topology ready, and
//! the seed's shell procedure.

use crate::util::Result;

pub(crate) fn run(_quick: bool) -> Result {
    Err("the overhead benchmark is not written yet".into())
}
