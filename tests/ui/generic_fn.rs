use netns_test::netns_test;

#[netns_test]
fn generic<T: Default>() {}

fn main() {}
