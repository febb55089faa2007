//! Netlink in-process: links, addresses, routes and bridges through rtnetlink, and a monitor
//! of link state per namespace so that readiness is awaited, never slept for.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use ipnet::IpNet;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::{
    InfoBridge, InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkMessage, State,
};
use rtnetlink::sys::{AsyncSocket, SocketAddr};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, MulticastGroup, RouteMessageBuilder};
use tokio::sync::Notify;

use crate::error::{Error, Result};

/// The two netlink connections of one namespace: one for requests, one subscribed to link
/// notifications. They are separate so that a burst of notifications can never crowd a reply
/// out of the socket buffer.
#[derive(Clone, Debug)]
pub(crate) struct NodeNetlink {
    pub(crate) handle: Handle,
    pub(crate) links: Arc<LinkMonitor>,
}

impl NodeNetlink {
    /// Opens both connections in the calling thread's network namespace and starts their tasks
    /// on `runtime`. Netlink sockets stay bound to the namespace they were opened in, so the
    /// handle may then be used from any thread.
    pub(crate) fn open(runtime: &tokio::runtime::Handle) -> io::Result<Self> {
        let _context = runtime.enter();
        let (connection, handle, _) = rtnetlink::new_connection()?;
        runtime.spawn(connection);
        let (mut connection, _, messages) =
            rtnetlink::new_multicast_connection(&[MulticastGroup::Link])?;
        // A larger buffer makes overruns rare on big switches; the monitor resynchronises
        // after one anyway.
        let _ = connection.socket_mut().socket_mut().set_rx_buf_sz(1 << 20);
        runtime.spawn(connection);
        let links = Arc::new(LinkMonitor::default());
        runtime.spawn(Arc::clone(&links).run(messages, handle.clone()));
        Ok(NodeNetlink { handle, links })
    }
}

/// The state of one link as the kernel last reported it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LinkStatus {
    /// `IFF_UP`: administratively up.
    pub(crate) up: bool,
    /// `IFF_LOWER_UP`: the carrier is on.
    pub(crate) lower_up: bool,
    /// RFC 2863 operational state is `UP`.
    pub(crate) oper_up: bool,
}

impl LinkStatus {
    fn from_message(message: &LinkMessage) -> Self {
        let flags = message.header.flags;
        let oper_up = message
            .attributes
            .iter()
            .any(|a| matches!(a, LinkAttribute::OperState(State::Up)));
        LinkStatus {
            up: flags.contains(LinkFlags::Up),
            lower_up: flags.contains(LinkFlags::LowerUp),
            oper_up,
        }
    }

    /// Ready to carry traffic: up, carrier on, and the kernel's link watcher has run (it sets
    /// the operational state, then attaches the qdisc; until then frames are dropped).
    pub(crate) fn ready(self) -> bool {
        self.up && self.lower_up && self.oper_up
    }
}

/// Tracks the link notifications of one namespace.
#[derive(Debug, Default)]
pub(crate) struct LinkMonitor {
    links: Mutex<HashMap<u32, LinkStatus>>,
    changed: Notify,
}

impl LinkMonitor {
    async fn run(
        self: Arc<Self>,
        mut messages: impl Stream<Item = (NetlinkMessage<RouteNetlinkMessage>, SocketAddr)> + Unpin,
        handle: Handle,
    ) {
        while let Some((message, _)) = messages.next().await {
            match message.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                    self.record(&link);
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
                    self.links
                        .lock()
                        .expect("monitor lock")
                        .remove(&link.header.index);
                }
                // Notifications were dropped: read the whole table again.
                NetlinkPayload::Overrun(_) => {
                    let mut dump = handle.link().get().execute();
                    while let Some(Ok(link)) = dump.next().await {
                        self.record(&link);
                    }
                }
                _ => continue,
            }
            self.changed.notify_waiters();
        }
    }

    fn record(&self, link: &LinkMessage) {
        self.links
            .lock()
            .expect("monitor lock")
            .insert(link.header.index, LinkStatus::from_message(link));
    }

    pub(crate) fn status(&self, index: u32) -> Option<LinkStatus> {
        self.links
            .lock()
            .expect("monitor lock")
            .get(&index)
            .copied()
    }

    /// Waits until `condition` holds for link `index`, or `deadline` passes (then returns the
    /// last status seen). Every 50 ms without news the link is queried directly, in case a
    /// notification was lost.
    pub(crate) async fn wait(
        &self,
        handle: &Handle,
        index: u32,
        deadline: Instant,
        condition: impl Fn(LinkStatus) -> bool,
    ) -> std::result::Result<(), Option<LinkStatus>> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let status = self.status(index);
            if status.is_some_and(&condition) {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(status);
            }
            let tick = (deadline - now).min(Duration::from_millis(50));
            if tokio::time::timeout(tick, notified).await.is_err() {
                let mut query = handle.link().get().match_index(index).execute();
                if let Some(Ok(link)) = query.next().await {
                    self.record(&link);
                }
            }
        }
    }
}

/// A request against one node, named for error messages.
#[derive(Clone, Copy)]
pub(crate) struct At<'a> {
    pub(crate) node: &'a str,
    pub(crate) handle: &'a Handle,
}

impl At<'_> {
    fn fail(&self, what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error + '_ {
        let what = what.into();
        move |source| Error::netlink(self.node, what, source)
    }

    /// `ip link set dev <index> up|down`.
    pub(crate) async fn set_link_up(&self, index: u32, name: &str, up: bool) -> Result<()> {
        let builder = LinkUnspec::new_with_index(index);
        let message = if up { builder.up() } else { builder.down() }.build();
        let word = if up { "up" } else { "down" };
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(self.fail(format!("ip link set {name} {word}")))
    }

    /// `ip link add <a> up type veth peer name <b> netns <b's namespace>`: both ends created
    /// in place, with the interface indexes of the plan, end `a` up. Must be sent through the
    /// connection of end `a`'s namespace: the kernel looks a given index up there first. End
    /// `b` cannot be created up (the kernel opens it before the pair is joined and refuses with
    /// `ENOTCONN`); set it up through its own namespace afterwards.
    pub(crate) async fn add_veth(&self, a: &VethEnd<'_>, b: &VethEnd<'_>) -> Result<()> {
        let peer = end_message(LinkMessageBuilder::<LinkUnspec>::new(), b)
            .setns_by_fd(b.netns)
            .build();
        let mut builder = end_message(
            LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth),
            a,
        )
        .up()
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)));
        if let Some(controller) = a.controller {
            builder = builder.controller(controller);
        }
        self.handle
            .link()
            .add(builder.build())
            .execute()
            .await
            .map_err(self.fail(format!(
                "ip link add {} type veth peer name {} (in node `{}`)",
                a.name, b.name, b.node
            )))
    }

    /// `ip link add br0 type bridge forward_delay 0 mcast_snooping 0` and up.
    pub(crate) async fn add_bridge(&self, index: u32, name: &str) -> Result<()> {
        let message = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Bridge)
            .name(name.to_string())
            .index(index)
            .up()
            .set_info_data(InfoData::Bridge(vec![
                InfoBridge::ForwardDelay(0),
                InfoBridge::MulticastSnooping(false),
            ]))
            .build();
        self.handle
            .link()
            .add(message)
            .execute()
            .await
            .map_err(self.fail(format!("ip link add {name} type bridge")))
    }

    /// `ip addr add <addr> dev <name>`, without duplicate-address detection for IPv6.
    pub(crate) async fn add_address(&self, index: u32, name: &str, addr: IpNet) -> Result<()> {
        let mut request = self
            .handle
            .address()
            .add(index, addr.addr(), addr.prefix_len());
        if addr.addr().is_ipv6() {
            request
                .message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        request
            .execute()
            .await
            .map_err(self.fail(format!("ip addr add {addr} dev {name}")))
    }

    /// `ip route add <to> via <via>`.
    pub(crate) async fn add_route(&self, to: IpNet, via: IpAddr) -> Result<()> {
        let what = format!("ip route add {to} via {via}");
        let message = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(to.addr(), to.prefix_len())
            .and_then(|builder| builder.gateway(via))
            .map_err(|error| {
                Error::io(
                    what.clone(),
                    io::Error::new(io::ErrorKind::InvalidInput, error),
                )
            })?
            .build();
        self.handle
            .route()
            .add(message)
            .execute()
            .await
            .map_err(self.fail(what))
    }
}

/// One end of a veth pair to create.
pub(crate) struct VethEnd<'a> {
    pub(crate) node: &'a str,
    pub(crate) name: &'a str,
    pub(crate) index: u32,
    pub(crate) netns: RawFd,
    pub(crate) mtu: Option<u32>,
    /// The bridge to enslave this end to, in its own namespace.
    pub(crate) controller: Option<u32>,
}

fn end_message<T>(builder: LinkMessageBuilder<T>, end: &VethEnd<'_>) -> LinkMessageBuilder<T> {
    let mut builder = builder.name(end.name.to_string()).index(end.index);
    if let Some(mtu) = end.mtu {
        builder = builder.mtu(mtu);
    }
    builder
}
