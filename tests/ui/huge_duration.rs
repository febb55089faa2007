use netns_test::netns_test;

#[netns_test(timeout = "99999999999999999999999999999999999999999h")]
fn more_hours_than_a_u128_counts() {}

#[netns_test(timeout = "18446744073709551615s 1000ms")]
fn more_seconds_than_a_duration_holds() {}

// Accepted, as by NETNS_TEST_TIMEOUT: a deadline too far for the clock is as good as none.
#[netns_test(timeout = "400000000000y")]
fn years() {}

#[netns_test(timeout = "5124095576031h")]
fn more_milliseconds_than_a_u64_counts() {}

fn main() {}
