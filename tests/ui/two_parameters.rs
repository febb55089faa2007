use netns_test::{Network, netns_test};

#[netns_test]
fn two(_net: &Network, _other: u32) {}

fn main() {}
