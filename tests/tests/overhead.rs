//! The two tests `cargo xtask bench overhead` times (each is also an ordinary, cheap test):
//! a plain `#[test]`, and a `#[netns_test]` whose body only checks that the seed topology is
//! there.

use netns_test::{Network, netns_test};

#[test]
fn plain() {
    assert_eq!(1 + 1, 2);
}

#[netns_test]
fn netns_seed(net: &Network) {
    assert_eq!(net.local().interfaces()[0].name(), "veth0");
}
