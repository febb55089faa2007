use netns_test::netns_test;

#[netns_test]
#[tokio::test]
async fn twice_a_test() {}

fn main() {}
