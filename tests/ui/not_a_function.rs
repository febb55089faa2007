use netns_test::netns_test;

#[netns_test]
struct NotATest;

fn main() {}
