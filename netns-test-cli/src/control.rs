//! The control socket of a lab: one JSON request per connection, one JSON line back. The lab
//! serves it from inside its network (the `sandbox` body); clients are the other subcommands.
//! `enter` answers with the namespaces of a node, passed as descriptors (`SCM_RIGHTS`).

use std::fs::File;
use std::io::{BufRead, BufReader, IoSlice, IoSliceMut, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::mpsc;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use serde::{Deserialize, Serialize};

use netns_test::{Conditions, Network};

use crate::CliError;

/// What a client asks.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub(crate) enum Request {
    /// The lab's nodes and links.
    Info,
    /// The namespaces of `node`, as descriptors.
    Enter { node: String },
    /// Ping `to` (a node name or an address) from `from`.
    Ping { from: String, to: String, count: u64 },
    /// `ip addr` and `ip route` of every node.
    Dump,
    /// New conditions for a link, in the topology file's grammar (a JSON object).
    Set { link: String, conditions: serde_json::Value },
    /// End the lab.
    Down,
}

/// The answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub(crate) enum Reply {
    /// Done; `text` is what to print.
    Ok { text: String },
    /// The lab's nodes.
    Info { nodes: Vec<NodeInfo>, links: Vec<String> },
    /// The descriptors follow in the same message: user, mount, PID, UTS, network namespace.
    Enter,
    /// The request failed.
    Error { message: String },
}

/// A node as `up` and `info` describe it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct NodeInfo {
    pub(crate) name: String,
    pub(crate) kind: String,
    /// `eth0 10.0.0.1/24 (to server:eth0)`.
    pub(crate) interfaces: Vec<String>,
    /// Each interface's name and the node at its other end, for naming links.
    pub(crate) peers: Vec<(String, String)>,
}

/// Sends `request` to the lab whose socket is `path` and reads the reply, with any descriptors
/// that came with it.
pub(crate) fn ask(path: &Path, request: &Request) -> Result<(Reply, Vec<OwnedFd>), CliError> {
    let stream = UnixStream::connect(path)
        .map_err(|e| CliError::io(format!("connecting to the lab's socket {}", path.display()), e))?;
    let mut line = serde_json::to_vec(request).expect("requests serialize");
    line.push(b'\n');
    (&stream).write_all(&line).map_err(|e| CliError::io("sending the request to the lab", e))?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut received = Vec::new();
    let mut fds = Vec::new();
    loop {
        let mut space = nix::cmsg_space!([RawFd; 8]);
        let mut iov = [IoSliceMut::new(&mut buffer)];
        let message =
            recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
                .map_err(|e| CliError::io("reading the lab's reply", e.into()))?;
        for cmsg in message.cmsgs().into_iter().flatten() {
            if let ControlMessageOwned::ScmRights(raw) = cmsg {
                // SAFETY: the kernel just installed these descriptors in this process for us.
                fds.extend(raw.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
        let n = message.bytes;
        received.extend_from_slice(&buffer[..n]);
        if n == 0 || received.ends_with(b"\n") {
            break;
        }
    }
    let reply = serde_json::from_slice(received.trim_ascii_end())
        .map_err(|e| CliError::Lab(format!("the lab's reply is not readable ({e}); did it end?")))?;
    Ok((reply, fds))
}

/// Serves the control socket at `path` for `net` until a `down` request. Runs in the lab.
pub(crate) fn serve(net: &'static Network, path: &Path, listener: UnixListener) {
    let (down, wait_down) = mpsc::channel::<()>();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let down = down.clone();
            std::thread::spawn(move || handle(net, stream, &down));
        }
    });
    let _ = wait_down.recv();
    let _ = std::fs::remove_file(path);
}

fn handle(net: &'static Network, stream: UnixStream, down: &mpsc::Sender<()>) {
    let mut line = String::new();
    if BufReader::new(&stream).read_line(&mut line).is_err() {
        return;
    }
    let reply = match serde_json::from_str::<Request>(&line) {
        Err(error) => Reply::Error { message: format!("unreadable request: {error}") },
        Ok(Request::Enter { node }) => match enter_fds(net, &node) {
            Ok(fds) => {
                let mut bytes = serde_json::to_vec(&Reply::Enter).expect("replies serialize");
                bytes.push(b'\n');
                let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
                let sent = sendmsg::<()>(
                    stream.as_raw_fd(),
                    &[IoSlice::new(&bytes)],
                    &[ControlMessage::ScmRights(&raw)],
                    MsgFlags::empty(),
                    None,
                );
                if let Err(error) = sent {
                    eprintln!("netns-test: passing node `{node}`'s namespaces: {error}");
                }
                return;
            }
            Err(message) => Reply::Error { message },
        },
        Ok(Request::Down) => {
            send(&stream, &Reply::Ok { text: String::new() });
            let _ = down.send(());
            return;
        }
        Ok(request) => answer(net, request).unwrap_or_else(|message| Reply::Error { message }),
    };
    send(&stream, &reply);
}

fn send(mut stream: &UnixStream, reply: &Reply) {
    let mut bytes = serde_json::to_vec(reply).expect("replies serialize");
    bytes.push(b'\n');
    let _ = stream.write_all(&bytes);
}

/// This process's user, mount and PID namespaces, then the node's UTS and network ones.
fn enter_fds(net: &Network, node: &str) -> Result<Vec<OwnedFd>, String> {
    let node = net.try_node(node).map_err(|e| e.to_string())?;
    let (net_fd, uts_fd) = netns_test::__private::node_namespace_fds(node);
    let own = |kind: &str| {
        File::open(format!("/proc/self/ns/{kind}"))
            .map(OwnedFd::from)
            .map_err(|e| format!("opening {kind}: {e}"))
    };
    let dup = |fd: RawFd| {
        // SAFETY: the node keeps `fd` open for as long as the network lives, which is the
        // whole lab; the borrow ends before this function returns.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        borrowed.try_clone_to_owned().map_err(|e| format!("duplicating a namespace descriptor: {e}"))
    };
    let uts = match uts_fd {
        Some(fd) => dup(fd)?,
        None => own("uts")?,
    };
    Ok(vec![own("user")?, own("mnt")?, own("pid")?, uts, dup(net_fd)?])
}

/// Every request but `enter` and `down`.
fn answer(net: &'static Network, request: Request) -> Result<Reply, String> {
    match request {
        Request::Info => Ok(Reply::Info { nodes: describe(net), links: link_names(net) }),
        Request::Ping { from, to, count } => {
            let node = net.try_node(&from).map_err(|e| e.to_string())?;
            let target: std::net::IpAddr = match to.parse() {
                Ok(addr) => addr,
                Err(_) => net
                    .try_node(&to)
                    .map_err(|e| e.to_string())?
                    .addr()
                    .ok_or_else(|| format!("node `{to}` has no address to ping"))?,
            };
            let stats = node.ping(target).count(count).run().map_err(|e| format!("{e}"))?;
            Ok(Reply::Ok { text: stats.to_string() })
        }
        Request::Dump => net.dump().map(|text| Reply::Ok { text }).map_err(|e| e.to_string()),
        Request::Set { link, conditions } => {
            let (a, b) = split_link(net, &link)?;
            let conditions: Conditions =
                serde_json::from_value(conditions).map_err(|e| format!("invalid conditions: {e}"))?;
            let handle = net.try_link(&a, &b).map_err(|e| e.to_string())?;
            handle.set_conditions(conditions.clone()).map_err(|e| e.to_string())?;
            Ok(Reply::Ok { text: format!("link {a}-{b}: {conditions}") })
        }
        Request::Enter { .. } | Request::Down => Err("not answered here".to_string()),
    }
}

/// The nodes with their interfaces and addresses.
pub(crate) fn describe(net: &Network) -> Vec<NodeInfo> {
    net.nodes()
        .iter()
        .map(|node| NodeInfo {
            name: node.name().to_string(),
            kind: node.kind().as_str().to_string(),
            interfaces: node
                .interfaces()
                .iter()
                .map(|iface| {
                    let addrs: Vec<String> = iface.addrs().iter().map(ToString::to_string).collect();
                    format!(
                        "{} {} (to {}:{})",
                        iface.name(),
                        if addrs.is_empty() { "-".to_string() } else { addrs.join(" ") },
                        iface.peer_node(),
                        iface.peer_name()
                    )
                })
                .collect(),
            peers: node
                .interfaces()
                .iter()
                .map(|iface| (iface.name().to_string(), iface.peer_node().to_string()))
                .collect(),
        })
        .collect()
}

/// Each link as `a-b`, the way `set` and `capture` name it.
fn link_names(net: &Network) -> Vec<String> {
    let mut names = Vec::new();
    for node in net.nodes() {
        for iface in node.interfaces() {
            let name = format!("{}-{}", node.name(), iface.peer_node());
            let reverse = format!("{}-{}", iface.peer_node(), node.name());
            if !names.contains(&name) && !names.contains(&reverse) {
                names.push(name);
            }
        }
    }
    names
}

/// `a-b` into its two node names (either may contain `-`: every split is tried).
fn split_link(net: &Network, link: &str) -> Result<(String, String), String> {
    for (at, _) in link.match_indices('-') {
        let (a, b) = (&link[..at], &link[at + 1..]);
        if net.try_link(a, b).is_ok() {
            return Ok((a.to_string(), b.to_string()));
        }
    }
    Err(format!("unknown link `{link}`; the lab's links: {}", link_names(net).join(", ")))
}
