use netns_test::netns_test;

#[netns_test(timeout = "1s", timeout = "2s")]
fn twice() {}

fn main() {}
