use netns_test::netns_test;

#[netns_test(topology = "tests/topologies/star4.toml")]
fn from_a_file() {}

fn main() {}
