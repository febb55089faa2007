use netns_test::{Network, netns_test};

#[netns_test]
fn smoke(net: &Network) {
    let dev = std::fs::read_to_string("/proc/self/net/dev").unwrap();
    println!("{dev}");
    assert!(dev.contains("veth0"));
    let peer = net.node("test1").run(|| std::fs::read_to_string("/proc/thread-self/net/dev").unwrap());
    assert!(peer.contains("veth1"), "{peer}");
    let out = net.node("test1").command("ip").args(["-br", "addr"]).output().unwrap();
    println!("{}", String::from_utf8_lossy(&out.stdout));
    let stream = std::net::TcpStream::connect("1.1.1.1:9");
    println!("{stream:?}");
}

#[netns_test]
fn fails() {
    panic!("boom");
}
