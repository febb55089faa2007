//! Readiness waits that replace sleeps: a listener bound, an address usable, a route in
//! place, a link carrying traffic. Each is a [`Wait`], blocking or awaited, with a deadline.
//!
//! ```no_run
//! # use std::time::Duration;
//! # fn body(net: &netns_test::Network) -> Result<(), Box<dyn std::error::Error>> {
//! use netns_test::wait::Protocol;
//!
//! net.node("server").listening(Protocol::Tcp, "10.0.3.2:8080".parse()?).wait()?;
//! net.node("client").route_ready("10.0.3.2".parse()?).timeout(Duration::from_secs(2)).wait()?;
//! # Ok(()) }
//! ```

use std::future::{Future, IntoFuture};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use ipnet::IpNet;

use super::Node;
use crate::error::{Error, Result};

/// How long a [`Wait`] waits unless told otherwise.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(10);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Why a check of a [`Wait`] stopped before its condition held.
#[derive(Debug)]
pub(super) enum Stop {
    /// The deadline passed first; [`Wait`] turns it into [`Error::Timeout`] naming the
    /// condition.
    DeadlinePassed,
    /// Checking the condition failed.
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(error: Error) -> Self {
        Stop::Failed(error)
    }
}

/// What a check of a [`Wait`] ends with: the condition holds, or why not.
pub(super) type Checked = std::result::Result<(), Stop>;

/// A readiness condition to wait for, with a deadline: call [`wait`](Self::wait) to block, or
/// `.await` it in async code. Either way the condition is checked on the network's control
/// thread, so waiting never stalls a runtime the test body uses.
#[must_use = "a Wait does nothing until `.wait()` is called or it is awaited"]
pub struct Wait {
    what: String,
    timeout: Duration,
    netlink_rt: tokio::runtime::Handle,
    check: Box<dyn FnOnce(Instant) -> BoxFuture<Checked> + Send>,
}

impl std::fmt::Debug for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wait").field("what", &self.what).field("timeout", &self.timeout).finish()
    }
}

impl Wait {
    pub(super) fn new(
        netlink_rt: &tokio::runtime::Handle,
        what: String,
        check: impl FnOnce(Instant) -> BoxFuture<Checked> + Send + 'static,
    ) -> Wait {
        Wait { what, timeout: DEFAULT_WAIT_TIMEOUT, netlink_rt: netlink_rt.clone(), check: Box::new(check) }
    }

    /// Waits at most `timeout` (default 10 s) before failing with [`Error::Timeout`]. Any
    /// length is accepted; `Duration::MAX` waits as long as the test may run.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Blocks until the condition holds.
    ///
    /// # Errors
    /// [`Error::Timeout`] naming the condition when it did not hold in time, or the error that
    /// checking it met.
    pub fn wait(self) -> Result<()> {
        let netlink_rt = self.netlink_rt.clone();
        crate::netlink::runtime::spawn_on(&netlink_rt, self.run()).wait()
    }

    async fn run(self) -> Result<()> {
        // A timeout too long for the clock is as good as none.
        let deadline = crate::time::deadline_after(self.timeout);
        match (self.check)(deadline).await {
            Ok(()) => Ok(()),
            Err(Stop::DeadlinePassed) => Err(Error::Timeout { what: self.what, after: self.timeout }),
            Err(Stop::Failed(error)) => Err(error),
        }
    }
}

impl IntoFuture for Wait {
    type Output = Result<()>;
    type IntoFuture = BoxFuture<Result<()>>;

    fn into_future(self) -> Self::IntoFuture {
        let netlink_rt = self.netlink_rt.clone();
        let task = netlink_rt.spawn(self.run());
        Box::pin(async move {
            task.await.unwrap_or_else(|_| Err(Error::io("waiting", std::io::ErrorKind::Interrupted.into())))
        })
    }
}

/// Polls `check` with a short, growing interval until it returns true or `deadline` passes:
/// for conditions the kernel sends no notification of.
pub(super) async fn poll_until<F>(deadline: Instant, mut check: impl FnMut() -> F) -> Checked
where
    F: Future<Output = Result<bool>>,
{
    let mut interval = Duration::from_micros(500);
    loop {
        if check().await? {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Stop::DeadlinePassed);
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
        interval = (interval * 2).min(Duration::from_millis(10));
    }
}

/// Transport protocols for [`Node::listening`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// A TCP socket in the LISTEN state.
    Tcp,
    /// A bound UDP socket.
    Udp,
}

impl Node {
    /// Waits until a socket of `protocol` is bound to `addr` in this node (or to the wildcard
    /// address with the same port): a TCP listener, or a bound UDP socket. Read from the
    /// kernel's socket tables, so nothing connects to the server to find out.
    pub fn listening(&self, protocol: Protocol, addr: SocketAddr) -> Wait {
        let tables: &[&str] = match protocol {
            Protocol::Tcp => &["tcp", "tcp6"],
            Protocol::Udp => &["udp", "udp6"],
        };
        // /proc/net files show the namespace of the thread that opened them, for as long as
        // they stay open: open them inside the node once, then re-read them from anywhere.
        let opened: Vec<std::io::Result<std::fs::File>> = self.run(|| {
            tables.iter().map(|table| std::fs::File::open(format!("/proc/thread-self/net/{table}"))).collect()
        });
        let what = format!("a {protocol:?} socket bound to {addr} in node `{}`", self.name());
        let node = self.name().to_string();
        Wait::new(self.netlink_rt().handle(), what, move |deadline| {
            Box::pin(async move {
                let mut files = Vec::new();
                for file in opened {
                    files.push(
                        file.map_err(|e| {
                            Error::io(format!("reading the socket tables of node `{node}`"), e)
                        })?,
                    );
                }
                let state = match protocol {
                    Protocol::Tcp => "0A",
                    Protocol::Udp => "07",
                };
                poll_until(deadline, || {
                    let mut found = Ok(false);
                    for file in &mut files {
                        match socket_table_has(file, state, addr) {
                            Ok(false) => continue,
                            Ok(true) => found = Ok(true),
                            Err(e) => found = Err(Error::io("reading /proc/net", e)),
                        }
                        break;
                    }
                    std::future::ready(found)
                })
                .await
            })
        })
    }

    /// Waits until `addr` is assigned in this node and usable (not tentative).
    pub fn address_ready(&self, addr: IpAddr) -> Wait {
        let what = format!("address {addr} to be usable in node `{}`", self.name());
        self.polling(what, move |handle| async move { address_usable(&handle, addr).await })
    }

    /// Waits until this node has a route to `destination` (a connected subnet, a static or
    /// default route).
    pub fn route_ready(&self, destination: IpAddr) -> Wait {
        let what = format!("a route to {destination} in node `{}`", self.name());
        self.polling(what, move |handle| async move { has_route(&handle, destination).await })
    }

    /// A wait for `what` that asks the node's kernel, through `holds`, until it says yes.
    fn polling<F, R>(&self, what: String, holds: F) -> Wait
    where
        F: Fn(rtnetlink::Handle) -> R + Send + Sync + 'static,
        R: Future<Output = bool> + Send,
    {
        let handle = self.netlink().handle.clone();
        Wait::new(self.netlink_rt().handle(), what, move |deadline| {
            Box::pin(async move {
                poll_until(deadline, || {
                    let asked = holds(handle.clone());
                    async move { Ok(asked.await) }
                })
                .await
            })
        })
    }
}

/// Whether a `/proc/net/{tcp,udp}{,6}` table lists a socket in `state` bound to `addr` (or
/// the wildcard address) with its port.
fn socket_table_has(file: &mut std::fs::File, state: &str, addr: SocketAddr) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(0))?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(st)) = (fields.get(1), fields.get(3)) else {
            return false;
        };
        if *st != state {
            return false;
        }
        let Some((ip_hex, port_hex)) = local.split_once(':') else {
            return false;
        };
        if u16::from_str_radix(port_hex, 16).ok() != Some(addr.port()) {
            return false;
        }
        match parse_proc_ip(ip_hex) {
            Some(bound) => bound.is_unspecified() || bound == addr.ip() || mapped(bound) == Some(addr.ip()),
            None => false,
        }
    }))
}

/// An address of /proc/net: 8 hex digits (IPv4) or 32 (IPv6), each 32-bit word in host order.
fn parse_proc_ip(hex: &str) -> Option<IpAddr> {
    let words: Option<Vec<u32>> =
        (0..hex.len() / 8).map(|i| u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16).ok()).collect();
    let bytes: Vec<u8> = words?.iter().flat_map(|w| w.to_ne_bytes()).collect();
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

/// The IPv4 address inside an IPv4-mapped IPv6 address.
fn mapped(addr: IpAddr) -> Option<IpAddr> {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
        IpAddr::V4(_) => None,
    }
}

async fn address_usable(handle: &rtnetlink::Handle, addr: IpAddr) -> bool {
    use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
    let mut dump = handle.address().get().execute();
    while let Some(Ok(message)) = dump.next().await {
        let matches = message
            .attributes
            .iter()
            .any(|a| matches!(a, AddressAttribute::Address(a) | AddressAttribute::Local(a) if *a == addr));
        if matches {
            let tentative = message
                .attributes
                .iter()
                .any(|a| matches!(a, AddressAttribute::Flags(f) if f.contains(AddressFlags::Tentative)));
            return !tentative;
        }
    }
    false
}

async fn has_route(handle: &rtnetlink::Handle, destination: IpAddr) -> bool {
    use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
    let builder = match destination {
        IpAddr::V4(_) => rtnetlink::RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
        IpAddr::V6(_) => rtnetlink::RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
    };
    let mut dump = handle.route().get(builder).execute();
    while let Some(Ok(route)) = dump.next().await {
        let prefix_len = route.header.destination_prefix_length;
        let prefix = route.attributes.iter().find_map(|a| match a {
            RouteAttribute::Destination(RouteAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
            RouteAttribute::Destination(RouteAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
            _ => None,
        });
        let covers = match prefix {
            Some(prefix) => IpNet::new(prefix, prefix_len).is_ok_and(|net| net.contains(&destination)),
            None => prefix_len == 0,
        };
        if covers {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_addresses() {
        assert_eq!(parse_proc_ip("0101A8C0"), Some("192.168.1.1".parse().unwrap()));
        assert_eq!(parse_proc_ip("00000000"), Some("0.0.0.0".parse().unwrap()));
        assert_eq!(parse_proc_ip("00000000000000000000000001000000"), Some("::1".parse().unwrap()));
        assert_eq!(parse_proc_ip("xyz"), None);
    }
}
