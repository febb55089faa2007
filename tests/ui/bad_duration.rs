use netns_test::netns_test;

#[netns_test(timeout = "30")]
fn no_unit() {}

#[netns_test(timeout = "0s")]
fn zero() {}

#[netns_test(timeout = "1.5ns")]
fn finer_than_a_nanosecond() {}

// The grammar of NETNS_TEST_TIMEOUT and of topology files: decimals and words are accepted.
#[netns_test(timeout = "1.5s")]
fn decimals() {}

#[netns_test(timeout = "1 minute 30 seconds")]
fn words() {}

fn main() {}
