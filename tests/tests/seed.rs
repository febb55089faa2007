//! The default topology and the nodes' ways of running code, checked against what the kernel
//! reports, not against what the framework believes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};

use netns_test::{Network, netns_test};
use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;

/// Interface name → (flags, IPv4 addresses with prefix length), as the calling thread's
/// namespace reports them.
fn interfaces() -> BTreeMap<String, (InterfaceFlags, Vec<String>)> {
    let mut map: BTreeMap<String, (InterfaceFlags, Vec<String>)> = BTreeMap::new();
    for ifaddr in getifaddrs().expect("getifaddrs") {
        let entry = map.entry(ifaddr.interface_name.clone()).or_insert((ifaddr.flags, Vec::new()));
        if let (Some(addr), Some(mask)) = (ifaddr.address, ifaddr.netmask) {
            if let (Some(addr), Some(mask)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in()) {
                entry.1.push(format!("{}/{}", addr.ip(), u32::from(mask.ip()).count_ones()));
            }
        }
    }
    map
}

/// The interface names listed in the calling thread's `/proc/thread-self/net/dev`.
fn dev_names(dev: &str) -> Vec<String> {
    dev.lines()
        .skip(2)
        .filter_map(|line| line.split(':').next())
        .map(|name| name.trim().to_string())
        .collect()
}

fn up_with_carrier(flags: InterfaceFlags) -> bool {
    flags.contains(InterfaceFlags::IFF_UP)
        && flags.contains(InterfaceFlags::IFF_RUNNING)
        && flags.contains(InterfaceFlags::IFF_LOWER_UP)
}

#[netns_test]
fn seed_topology_is_as_specified(net: &Network) {
    let local = interfaces();
    assert_eq!(local.keys().collect::<Vec<_>>(), ["lo", "veth0"], "{local:?}");
    assert!(local["lo"].0.contains(InterfaceFlags::IFF_UP));
    assert!(up_with_carrier(local["veth0"].0), "{:?}", local["veth0"]);
    assert_eq!(local["veth0"].1, ["1.1.1.2/24"]);

    let peer = net.node("test1").run(interfaces);
    assert_eq!(peer.keys().collect::<Vec<_>>(), ["lo", "veth1"], "{peer:?}");
    assert!(peer["lo"].0.contains(InterfaceFlags::IFF_UP));
    assert!(up_with_carrier(peer["veth1"].0), "{:?}", peer["veth1"]);
    assert_eq!(peer["veth1"].1, ["1.1.1.1/24"]);

    assert_eq!(net.local().name(), "test0");
    assert_eq!(net.nodes().iter().map(|n| n.name()).collect::<Vec<_>>(), ["test0", "test1"]);
    let veth0 = net.local().interface("veth0").unwrap();
    assert_eq!((veth0.peer_node(), veth0.peer_name()), ("test1", "veth1"));
    assert_eq!(net.node("test1").addr(), Some("1.1.1.1".parse::<IpAddr>().unwrap()));
}

/// The interfaces that have an IPv6 address, from `/proc/thread-self/net/if_inet6` (one line
/// per address, the interface name last).
fn ipv6_interfaces() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/thread-self/net/if_inet6").unwrap_or_default();
    text.lines().filter_map(|line| line.split_whitespace().last().map(str::to_string)).collect()
}

#[netns_test]
fn a_topology_without_ipv6_has_no_link_local_addresses(net: &Network) {
    // The veth ends are told so in their own requests (not through the namespace's default):
    // after both are up with carrier, neither has an IPv6 address; only `lo` may have ::1.
    for ifaces in [ipv6_interfaces(), net.node("test1").run(ipv6_interfaces)] {
        assert!(ifaces.iter().all(|name| name == "lo"), "{ifaces:?}");
    }
}

#[netns_test]
fn the_link_is_usable_at_once(net: &Network) {
    // No sleep, no retry: the first connection attempt must succeed.
    let listener = net.node("test1").run(|| TcpListener::bind("1.1.1.1:7000")).expect("bind in test1");
    let server = std::thread::spawn(move || {
        let (mut stream, from) = listener.accept().expect("accept");
        stream.write_all(from.ip().to_string().as_bytes()).expect("write");
    });
    let mut client = TcpStream::connect("1.1.1.1:7000").expect("the first connect succeeds");
    let mut seen = String::new();
    client.read_to_string(&mut seen).expect("read");
    assert_eq!(seen, "1.1.1.2");
    server.join().unwrap();
}

#[netns_test]
fn closures_run_in_their_node(net: &Network) {
    let here = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap();
    assert_eq!(dev_names(&here), ["lo", "veth0"]);
    let there = net.node("test1").run(|| std::fs::read_to_string("/proc/thread-self/net/dev").unwrap());
    assert_eq!(dev_names(&there), ["lo", "veth1"]);
    // The local node's closure runs on another thread, still in the local namespace.
    let local = net.local().run(|| std::fs::read_to_string("/proc/thread-self/net/dev").unwrap());
    assert_eq!(dev_names(&local), ["lo", "veth0"]);
    // A closure may borrow, and its panic reaches the caller.
    let name = String::from("test1");
    let len = net.node("test1").run(|| name.len());
    assert_eq!(len, 5);
    let caught = std::panic::catch_unwind(|| net.node("test1").run(|| panic!("inside test1")));
    assert!(caught.is_err());
}

#[netns_test]
fn tasks_run_in_their_node(net: &Network) {
    let task =
        net.node("test1").spawn(async { std::fs::read_to_string("/proc/thread-self/net/dev").unwrap() });
    let dev = netns_test::__private::block_on(task).unwrap();
    assert_eq!(dev_names(&dev), ["lo", "veth1"]);
    // Blocking work the task hands off runs in the node too.
    let blocking = net.node("test1").spawn(async {
        tokio::task::spawn_blocking(|| std::fs::read_to_string("/proc/thread-self/net/dev").unwrap())
            .await
            .unwrap()
    });
    let dev = netns_test::__private::block_on(blocking).unwrap();
    assert_eq!(dev_names(&dev), ["lo", "veth1"]);
}

#[netns_test]
async fn an_async_body_talks_to_a_server_task(net: &Network) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = net
        .node("test1")
        .spawn(async { tokio::net::TcpListener::bind("1.1.1.1:7001").await })
        .await
        .unwrap()
        .expect("bind in test1");
    let server = net.node("test1").spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.write_all(b"pong").await.unwrap();
    });
    let mut client = tokio::net::TcpStream::connect("1.1.1.1:7001").await.unwrap();
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).await.unwrap();
    assert_eq!(reply, b"pong");
    server.await.unwrap();
}

#[netns_test]
fn programs_run_in_their_node(net: &Network) {
    let output = net.node("test1").command("cat").arg("/proc/self/net/dev").output().unwrap();
    assert!(output.status.success());
    assert_eq!(dev_names(&String::from_utf8_lossy(&output.stdout)), ["lo", "veth1"]);
    let output = net.local().command("cat").arg("/proc/self/net/dev").output().unwrap();
    assert_eq!(dev_names(&String::from_utf8_lossy(&output.stdout)), ["lo", "veth0"]);
}

#[netns_test]
fn sockets_stay_in_the_node_that_made_them(net: &Network) {
    // 1.1.1.1 exists only in test1: binding it here fails, binding it in test1 works, and the
    // socket made there keeps working from this thread.
    assert!(TcpListener::bind("1.1.1.1:0").is_err());
    let listener = net.node("test1").run(|| TcpListener::bind("1.1.1.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = std::thread::spawn(move || TcpStream::connect(("1.1.1.1", port)).map(|_| ()));
    listener.accept().expect("a connection arrives on the socket made in test1");
    client.join().unwrap().unwrap();
}

#[netns_test]
fn the_network_is_also_reachable_by_a_function(net: &Network) {
    assert!(std::ptr::eq(netns_test::network(), net));
    assert_eq!(netns_test::try_network().unwrap().local().name(), "test0");
}

#[test]
fn the_network_function_outside_a_test_is_an_error() {
    let error = netns_test::try_network().unwrap_err();
    assert!(error.to_string().contains("can only be called inside a #[netns_test]"), "{error}");
}

#[netns_test]
fn the_test_runs_under_its_own_init(net: &Network) {
    // The test process is PID 2 of its own PID namespace, under a reaping init; programs it
    // starts get further PIDs in that namespace.
    assert_eq!(std::process::id(), 2);
    let output = net.local().command("sh").args(["-c", "echo $$"]).output().unwrap();
    let pid: u32 = String::from_utf8_lossy(&output.stdout).trim().parse().unwrap();
    assert!(pid > 2, "{pid}");
}

#[netns_test]
fn proc_shows_the_tests_own_processes(net: &Network) {
    use std::collections::BTreeSet;
    // A program started in a node: its PID, /proc/<pid> and kill(2) name the same process.
    let mut sleep = net.node("test1").command("sleep").arg("10").spawn().unwrap();
    let pid = sleep.id();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sleep");
    assert_eq!(std::fs::read_to_string("/proc/1/comm").unwrap().trim(), "netns-test-init");
    assert_eq!(std::fs::read_link("/proc/self").unwrap().to_str(), Some("2"));

    // procps lists exactly the test's processes: its init, the test itself, the sleep and the
    // ps reading /proc, and nothing of the host's.
    let ps = net
        .local()
        .command("ps")
        .args(["-e", "-o", "pid=,comm="])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ps_pid = ps.id();
    let listing = String::from_utf8(ps.wait_with_output().unwrap().stdout).unwrap();
    let pids: BTreeSet<u32> =
        listing.lines().map(|line| line.split_whitespace().next().unwrap().parse().unwrap()).collect();
    assert_eq!(pids, BTreeSet::from([1, 2, pid, ps_pid]), "{listing}");
    let pgrep = net.local().command("pgrep").args(["-x", "sleep"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&pgrep.stdout).trim(), pid.to_string());

    let sleep_pid = nix::unistd::Pid::from_raw(pid as i32);
    nix::sys::signal::kill(sleep_pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let status = sleep.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
}
