use rstest::rstest;

#[netns_test::test]
#[rstest]
#[case(1)]
fn wrong_order(#[case] n: u32) {}

fn main() {}
