//! The tests `cargo xtask bench overhead` times (each is also an ordinary, cheap test): a plain
//! `#[test]`, and a `#[netns_test]` whose body only checks that the default pair topology is
//! there; and forty of each, for the cost per test within a suite.

use netns_test::{Network, netns_test};
use rstest::rstest;

#[test]
fn plain() {
    assert_eq!(1 + 1, 2);
}

#[netns_test]
fn netns_seed(net: &Network) {
    assert_eq!(net.local().interfaces()[0].name(), "veth0");
}

#[rstest]
#[test]
fn suite_plain(
    #[values(
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27,
        28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39
    )]
    n: u32,
) {
    assert!(n < 40);
}

#[rstest]
#[netns_test::test]
fn suite_netns(
    #[values(
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27,
        28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39
    )]
    n: u32,
) {
    assert!(n < 40);
    assert_eq!(netns_test::network().local().interfaces()[0].name(), "veth0");
}
