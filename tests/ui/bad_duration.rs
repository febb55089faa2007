use netns_test::netns_test;

#[netns_test(timeout = "30 seconds")]
fn words() {}

#[netns_test(timeout = "0s")]
fn zero() {}

fn main() {}
