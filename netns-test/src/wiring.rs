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
use rtnetlink::packet_core::{
    DefaultNla, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage,
    NetlinkPayload,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::{
    InfoBridge, InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkMessage, State,
};
use rtnetlink::packet_route::tc::{TcAttribute, TcHandle, TcMessage, TcOption};
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
        let (mut connection, _, messages) = rtnetlink::new_multicast_connection(&[MulticastGroup::Link])?;
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
        let oper_up = message.attributes.iter().any(|a| matches!(a, LinkAttribute::OperState(State::Up)));
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
                    self.links.lock().expect("monitor lock").remove(&link.header.index);
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
        self.links.lock().expect("monitor lock").insert(link.header.index, LinkStatus::from_message(link));
    }

    pub(crate) fn status(&self, index: u32) -> Option<LinkStatus> {
        self.links.lock().expect("monitor lock").get(&index).copied()
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
    pub(crate) async fn add_veth(&self, a: &VethEnd, b: &VethEnd) -> Result<()> {
        let peer = end_message(LinkMessageBuilder::<LinkUnspec>::new(), b).setns_by_fd(b.netns).build();
        let mut builder =
            end_message(LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth), a)
                .up()
                .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)));
        if let Some(controller) = a.controller {
            builder = builder.controller(controller);
        }
        self.handle.link().add(builder.build()).execute().await.map_err(
            self.fail(format!(
                "ip link add {} type veth peer name {} (in node `{}`)",
                a.name, b.name, b.node
            )),
        )
    }

    /// `ip link add br0 address <mac> type bridge forward_delay 0 mcast_snooping 0` and up.
    pub(crate) async fn add_bridge(&self, index: u32, name: &str) -> Result<()> {
        let message = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Bridge)
            .name(name.to_string())
            .index(index)
            .address(crate::topology::mac_for(index).to_vec())
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

    /// `ip link set <name> master <bridge>`.
    pub(crate) async fn set_controller(&self, index: u32, name: &str, bridge: u32) -> Result<()> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).controller(bridge).build())
            .execute()
            .await
            .map_err(self.fail(format!("ip link set {name} master {bridge}")))
    }

    /// `ip addr add <addr> dev <name>`, without duplicate-address detection for IPv6.
    pub(crate) async fn add_address(&self, index: u32, name: &str, addr: IpNet) -> Result<()> {
        let mut request = self.handle.address().add(index, addr.addr(), addr.prefix_len());
        if addr.addr().is_ipv6() {
            request.message_mut().attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        request.execute().await.map_err(self.fail(format!("ip addr add {addr} dev {name}")))
    }

    /// `ip neigh add <addr> lladdr <mac> dev <index> nud permanent`.
    pub(crate) async fn add_static_neighbour(&self, index: u32, addr: IpAddr, mac: [u8; 6]) -> Result<()> {
        use rtnetlink::packet_route::neighbour::NeighbourState;
        let what = format!(
            "ip neigh add {addr} lladdr {} dev {index} nud permanent",
            mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
        );
        self.handle
            .neighbours()
            .add(index, addr)
            .link_layer_address(&mac)
            .state(NeighbourState::Permanent)
            .execute()
            .await
            .map_err(self.fail(what))
    }

    /// `ip neigh show nud incomplete nud failed`: the neighbours being resolved, or that
    /// failed to resolve, as (interface index, address).
    pub(crate) async fn unresolved_neighbours(&self) -> Result<Vec<(u32, IpAddr)>> {
        use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourState};
        let what = "ip neigh show nud incomplete nud failed";
        let mut dump = self.handle.neighbours().get().execute();
        let mut unresolved = Vec::new();
        while let Some(message) = dump.next().await {
            let message = message.map_err(self.fail(what))?;
            if !matches!(message.header.state, NeighbourState::Incomplete | NeighbourState::Failed) {
                continue;
            }
            let addr = message.attributes.iter().find_map(|attribute| match attribute {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
                _ => None,
            });
            if let Some(addr) = addr {
                unresolved.push((message.header.ifindex, addr));
            }
        }
        Ok(unresolved)
    }

    /// `ip neigh change <addr> lladdr <mac> dev <index> nud stale`: resolves an existing
    /// entry at once, as an answer would, sending the packets it holds. An entry that is gone
    /// meanwhile is left gone.
    pub(crate) async fn resolve_neighbour(&self, index: u32, addr: IpAddr, mac: [u8; 6]) -> Result<()> {
        use rtnetlink::packet_route::neighbour::NeighbourState;
        let mut request =
            self.handle.neighbours().add(index, addr).link_layer_address(&mac).state(NeighbourState::Stale);
        let message = std::mem::take(request.message_mut());
        let what = format!(
            "ip neigh change {addr} lladdr {} dev {index} nud stale",
            mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
        );
        // NLM_F_REPLACE without NLM_F_CREATE: only an entry that exists is changed.
        match self.send(RouteNetlinkMessage::NewNeighbour(message), NLM_F_REPLACE, what).await {
            Err(Error::Netlink { ref source, .. }) if matches!(**source, rtnetlink::Error::NetlinkError(ref e) if e.raw_code() == -libc::ENOENT) => {
                Ok(())
            }
            other => other,
        }
    }

    /// `ip route add <to> via <via>`, where the route may already exist (`ip route replace`
    /// would also overwrite a route the test changed).
    pub(crate) async fn add_route_again(&self, to: IpNet, via: IpAddr) -> Result<()> {
        match self.add_route(to, via).await {
            Err(Error::Netlink { ref source, .. }) if matches!(**source, rtnetlink::Error::NetlinkError(ref e) if e.raw_code() == -libc::EEXIST) => {
                Ok(())
            }
            other => other,
        }
    }

    /// `ip route add <to> via <via>`.
    pub(crate) async fn add_route(&self, to: IpNet, via: IpAddr) -> Result<()> {
        let what = format!("ip route add {to} via {via}");
        let message = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(to.addr(), to.prefix_len())
            .and_then(|builder| builder.gateway(via))
            .map_err(|error| Error::io(what.clone(), io::Error::new(io::ErrorKind::InvalidInput, error)))?
            .build();
        self.handle.route().add(message).execute().await.map_err(self.fail(what))
    }
}

/// The ingress hook of the `clsact` qdisc, where link cuts and partitions install their
/// filters.
const CLSACT_INGRESS: TcHandle = TcHandle { major: 0xFFFF, minor: TcHandle::MIN_INGRESS };
/// `TCA_BPF_OPS_LEN`, `TCA_BPF_OPS`, `TCA_BPF_FLAGS` of `linux/pkt_cls.h`.
const TCA_BPF_OPS_LEN: u16 = 4;
const TCA_BPF_OPS: u16 = 5;
const TCA_BPF_FLAGS: u16 = 8;
const TCA_BPF_FLAG_ACT_DIRECT: u32 = 1;
/// `ETH_P_ALL` in network byte order, as `tcm_info` wants it.
const ETH_P_ALL_BE: u32 = 0x0003u16.to_be() as u32;

impl At<'_> {
    /// Sends one request and waits for its acknowledgement.
    async fn send(&self, message: RouteNetlinkMessage, flags: u16, what: String) -> Result<()> {
        let mut request = NetlinkMessage::from(message);
        request.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        let mut handle = self.handle.clone();
        let mut response = handle.request(request).map_err(self.fail(what.clone()))?;
        while let Some(message) = response.next().await {
            if let NetlinkPayload::Error(error) = message.payload {
                return Err(Error::netlink(self.node, what, rtnetlink::Error::NetlinkError(error)));
            }
        }
        Ok(())
    }

    /// `tc qdisc add dev <name> clsact`; an existing one is fine.
    pub(crate) async fn ensure_clsact(&self, index: u32, name: &str) -> Result<()> {
        let mut message = TcMessage::with_index(index as i32);
        message.header.parent = TcHandle::CLSACT;
        message.header.handle = TcHandle { major: 0xFFFF, minor: 0 };
        message.attributes.push(TcAttribute::Kind("clsact".into()));
        let result = self
            .send(
                RouteNetlinkMessage::NewQueueDiscipline(message),
                NLM_F_CREATE | NLM_F_EXCL,
                format!("tc qdisc add dev {name} clsact"),
            )
            .await;
        match result {
            Err(Error::Netlink { ref source, .. }) if matches!(**source, rtnetlink::Error::NetlinkError(ref e) if e.raw_code() == -libc::EEXIST) => {
                Ok(())
            }
            other => other,
        }
    }

    /// `tc filter add dev <name> ingress prio <prio> bpf da bytecode <program>`.
    pub(crate) async fn add_ingress_filter(
        &self,
        index: u32,
        name: &str,
        prio: u16,
        program: &[SockFilter],
    ) -> Result<()> {
        let mut ops = Vec::with_capacity(program.len() * 8);
        for ins in program {
            ops.extend_from_slice(&ins.code.to_ne_bytes());
            ops.push(ins.jt);
            ops.push(ins.jf);
            ops.extend_from_slice(&ins.k.to_ne_bytes());
        }
        let count =
            u16::try_from(program.len()).expect("classic BPF programs have at most 4096 instructions");
        let mut message = TcMessage::with_index(index as i32);
        message.header.parent = CLSACT_INGRESS;
        message.header.info = (u32::from(prio) << 16) | ETH_P_ALL_BE;
        message.attributes.push(TcAttribute::Kind("bpf".into()));
        message.attributes.push(TcAttribute::Options(vec![
            TcOption::Other(DefaultNla::new(TCA_BPF_OPS_LEN, count.to_ne_bytes().to_vec())),
            TcOption::Other(DefaultNla::new(TCA_BPF_OPS, ops)),
            TcOption::Other(DefaultNla::new(TCA_BPF_FLAGS, TCA_BPF_FLAG_ACT_DIRECT.to_ne_bytes().to_vec())),
        ]));
        self.send(
            RouteNetlinkMessage::NewTrafficFilter(message),
            NLM_F_CREATE | NLM_F_EXCL,
            format!("tc filter add dev {name} ingress prio {prio} bpf da"),
        )
        .await
    }

    /// `tc filter del dev <name> ingress prio <prio>`.
    pub(crate) async fn del_ingress_filter(&self, index: u32, name: &str, prio: u16) -> Result<()> {
        let mut message = TcMessage::with_index(index as i32);
        message.header.parent = CLSACT_INGRESS;
        message.header.info = (u32::from(prio) << 16) | ETH_P_ALL_BE;
        self.send(
            RouteNetlinkMessage::DelTrafficFilter(message),
            0,
            format!("tc filter del dev {name} ingress prio {prio}"),
        )
        .await
    }
}

/// Interfaces (state, MTU, addresses) and routes of one namespace, as sorted text lines.
pub(crate) async fn dump(handle: &Handle) -> std::result::Result<String, rtnetlink::Error> {
    use std::collections::BTreeMap;
    use std::fmt::Write as _;

    use rtnetlink::packet_route::address::AddressAttribute;
    use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteProtocol, RouteType};

    let mut names: BTreeMap<u32, (String, String)> = BTreeMap::new();
    let mut links = handle.link().get().execute();
    while let Some(link) = links.next().await {
        let link = link?;
        let name = link.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(name) => Some(name.clone()),
            _ => None,
        });
        let mtu = link.attributes.iter().find_map(|a| match a {
            LinkAttribute::Mtu(mtu) => Some(*mtu),
            _ => None,
        });
        let mac = link.attributes.iter().find_map(|a| match a {
            LinkAttribute::Address(mac) => {
                Some(mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"))
            }
            _ => None,
        });
        let status = LinkStatus::from_message(&link);
        let state = if status.up && status.lower_up {
            "UP"
        } else if status.up {
            "NO-CARRIER"
        } else {
            "DOWN"
        };
        let line = format!("{state} mtu {} {}", mtu.unwrap_or(0), mac.unwrap_or_default());
        names.insert(link.header.index, (name.unwrap_or_else(|| link.header.index.to_string()), line));
    }
    let mut addresses: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut dump = handle.address().get().execute();
    while let Some(address) = dump.next().await {
        let address = address?;
        let ip = address.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        });
        if let Some(ip) = ip {
            // Link-local addresses are derived from random MAC addresses: not comparable.
            if matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local()) {
                continue;
            }
            addresses
                .entry(address.header.index)
                .or_default()
                .push(format!("{ip}/{}", address.header.prefix_len));
        }
    }
    let mut text = String::new();
    for (index, (name, line)) in &names {
        let mut addrs = addresses.remove(index).unwrap_or_default();
        addrs.sort();
        let _ = writeln!(text, "  {name} {line} {}", addrs.join(" "));
    }
    let mut routes = Vec::new();
    for family in [IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)] {
        let message = match family {
            IpAddr::V4(_) => RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
            IpAddr::V6(_) => RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
        };
        let mut dump = handle.route().get(message).execute();
        while let Some(route) = dump.next().await {
            let route = route?;
            if route.header.kind != RouteType::Unicast {
                continue;
            }
            let address = |a: &RouteAddress| match a {
                RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
                RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
                _ => None,
            };
            let destination = route.attributes.iter().find_map(|a| match a {
                RouteAttribute::Destination(d) => address(d),
                _ => None,
            });
            if matches!(destination, Some(IpAddr::V6(v6)) if v6.is_unicast_link_local()) {
                continue;
            }
            let gateway = route.attributes.iter().find_map(|a| match a {
                RouteAttribute::Gateway(g) => address(g),
                _ => None,
            });
            let device = route.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(index) => names.get(index).map(|(name, _)| name.clone()),
                _ => None,
            });
            let destination = match destination {
                Some(ip) => format!("{ip}/{}", route.header.destination_prefix_length),
                None => "default".to_string(),
            };
            let mut line = format!("  route {destination}");
            if let Some(gateway) = gateway {
                let _ = write!(line, " via {gateway}");
            }
            if let Some(device) = device {
                let _ = write!(line, " dev {device}");
            }
            if route.header.protocol == RouteProtocol::Kernel {
                line.push_str(" proto kernel");
            }
            routes.push(line);
        }
    }
    routes.sort();
    for route in routes {
        let _ = writeln!(text, "{route}");
    }
    Ok(text)
}

/// One end of a veth pair to create.
pub(crate) struct VethEnd {
    pub(crate) node: String,
    pub(crate) name: String,
    pub(crate) index: u32,
    pub(crate) netns: RawFd,
    pub(crate) mtu: Option<u32>,
    /// The bridge to enslave this end to, in its own namespace.
    pub(crate) controller: Option<u32>,
}

fn end_message<T>(builder: LinkMessageBuilder<T>, end: &VethEnd) -> LinkMessageBuilder<T> {
    let mut builder = builder
        .name(end.name.to_string())
        .index(end.index)
        .address(crate::topology::mac_for(end.index).to_vec());
    if let Some(mtu) = end.mtu {
        builder = builder.mtu(mtu);
    }
    builder
}

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SockFilter {
    pub(crate) code: u16,
    pub(crate) jt: u8,
    pub(crate) jf: u8,
    pub(crate) k: u32,
}

/// Classic BPF programs for tc's `bpf` classifier in direct-action mode, where the return
/// value is the action: `TC_ACT_SHOT` drops, `TC_ACT_UNSPEC` passes on to the next filter.
/// Classic BPF needs no `bpf(2)` privilege, so this works in rootless mode too, and on kernels
/// without `act_gact` or `cls_matchall`.
pub(crate) mod cbpf {
    use std::net::IpAddr;

    use super::SockFilter;

    const LD_H_ABS: u16 = 0x28;
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    const JA: u16 = 0x05;
    const TC_ACT_SHOT: u32 = 2;
    const TC_ACT_UNSPEC: u32 = u32::MAX;
    const ETH_P_IP: u32 = 0x0800;
    const ETH_P_IPV6: u32 = 0x86dd;

    fn op(code: u16, jt: u8, jf: u8, k: u32) -> SockFilter {
        SockFilter { code, jt, jf, k }
    }

    /// Drops every frame.
    pub(crate) fn drop_all() -> Vec<SockFilter> {
        vec![op(RET_K, 0, 0, TC_ACT_SHOT)]
    }

    /// Drops IPv4 and IPv6 packets whose source is one of `sources`; passes everything else
    /// (ARP and neighbour discovery included, so the partition is at layer 3).
    pub(crate) fn drop_from(sources: &[IpAddr]) -> Vec<SockFilter> {
        let pass = op(RET_K, 0, 0, TC_ACT_UNSPEC);
        let drop = op(RET_K, 0, 0, TC_ACT_SHOT);
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for source in sources {
            match source {
                IpAddr::V4(addr) => {
                    // Equal: fall through to the drop; else skip it.
                    v4.push(op(JEQ_K, 0, 1, u32::from(*addr)));
                    v4.push(drop);
                }
                IpAddr::V6(addr) => {
                    let words: Vec<u32> = addr
                        .octets()
                        .chunks(4)
                        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                        .collect();
                    for (i, word) in words.iter().enumerate() {
                        // A mismatch skips the rest of this address's checks and its drop.
                        let skip = u8::try_from(2 * (3 - i) + 1).expect("small");
                        let offset = 14 + 8 + 4 * u32::try_from(i).expect("four words");
                        v6.push(op(LD_W_ABS, 0, 0, offset));
                        v6.push(op(JEQ_K, 0, skip, *word));
                    }
                    v6.push(drop);
                }
            }
        }
        v4.push(pass);
        v6.push(pass);
        // 0: ldh [12]            (EtherType)
        // 1: jeq IPv4 ? 2 : 3
        // 2: ja v4              (the v4 block starts at 6)
        // 3: jeq IPv6 ? 5 : 4
        // 4: ret pass           (ARP and the rest)
        // 5: ja v6              (after the v4 block)
        // 6: ld [26]            (IPv4 source), then the v4 comparisons, then the v6 block.
        let v4_block = 1 + v4.len();
        let mut program = vec![
            op(LD_H_ABS, 0, 0, 12),
            op(JEQ_K, 0, 1, ETH_P_IP),
            op(JA, 0, 0, 3),
            op(JEQ_K, 1, 0, ETH_P_IPV6),
            pass,
            op(JA, 0, 0, u32::try_from(v4_block).expect("programs are small")),
            op(LD_W_ABS, 0, 0, 14 + 12),
        ];
        program.extend(v4);
        program.extend(v6);
        program
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::SockFilter;
    use super::cbpf;

    /// Runs a classic BPF program over a frame, as the kernel would (only the opcodes the
    /// programs above use).
    fn run(program: &[SockFilter], frame: &[u8]) -> u32 {
        let (mut pc, mut a) = (0usize, 0u32);
        loop {
            let ins = program[pc];
            let k = ins.k as usize;
            match ins.code {
                0x28 => a = u32::from(u16::from_be_bytes([frame[k], frame[k + 1]])),
                0x20 => a = u32::from_be_bytes([frame[k], frame[k + 1], frame[k + 2], frame[k + 3]]),
                0x15 => {
                    pc += usize::from(if a == ins.k { ins.jt } else { ins.jf });
                }
                0x05 => pc += k,
                0x06 => return ins.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
            pc += 1;
        }
    }

    fn frame(ethertype: u16, source: IpAddr) -> Vec<u8> {
        let mut frame = vec![0u8; 14 + 40];
        frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
        match source {
            IpAddr::V4(v4) => frame[26..30].copy_from_slice(&v4.octets()),
            IpAddr::V6(v6) => frame[22..38].copy_from_slice(&v6.octets()),
        }
        frame
    }

    const SHOT: u32 = 2;
    const PASS: u32 = u32::MAX;

    #[test]
    fn drop_from_matches_exactly_the_listed_sources() {
        let listed: Vec<IpAddr> =
            ["10.0.0.1", "10.0.0.3", "fd00::1", "fd00::1:3"].iter().map(|a| a.parse().unwrap()).collect();
        let program = cbpf::drop_from(&listed);
        for source in &listed {
            let ethertype = if source.is_ipv4() { 0x0800 } else { 0x86dd };
            assert_eq!(run(&program, &frame(ethertype, *source)), SHOT, "{source}");
        }
        for other in ["10.0.0.2", "10.0.1.1", "fd00::2", "fd00::1:4", "fe80::1"] {
            let source: IpAddr = other.parse().unwrap();
            let ethertype = if source.is_ipv4() { 0x0800 } else { 0x86dd };
            assert_eq!(run(&program, &frame(ethertype, source)), PASS, "{other}");
        }
        // ARP passes whatever it carries.
        assert_eq!(run(&program, &frame(0x0806, "10.0.0.1".parse().unwrap())), PASS);
        assert_eq!(run(&cbpf::drop_all(), &frame(0x0806, "10.0.0.1".parse().unwrap())), SHOT);
    }

    #[test]
    fn drop_from_nothing_passes_everything() {
        let program = cbpf::drop_from(&[]);
        assert_eq!(run(&program, &frame(0x0800, "10.0.0.1".parse().unwrap())), PASS);
        assert_eq!(run(&program, &frame(0x86dd, "fd00::1".parse().unwrap())), PASS);
    }
}
