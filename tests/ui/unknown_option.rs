use netns_test::netns_test;

#[netns_test(timeot = "1s")]
fn typo() {}

fn main() {}
