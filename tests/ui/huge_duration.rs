use netns_test::netns_test;

#[netns_test(timeout = "400000000000y")]
fn years() {}

#[netns_test(timeout = "99999999999999999999h")]
fn more_hours_than_a_u64_counts() {}

#[netns_test(timeout = "5124095576031h")]
fn more_milliseconds_than_a_u64_counts() {}

fn main() {}
