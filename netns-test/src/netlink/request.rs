//! Requests against one namespace, each named for the `ip` command it mirrors: links,
//! addresses, routes, neighbours and bridges.

use std::io;
use std::net::IpAddr;
use std::os::fd::RawFd;

use futures_util::StreamExt;
use ipnet::IpNet;
use rtnetlink::packet_core::NLM_F_REPLACE;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::{InfoBridge, InfoData, InfoKind, InfoVeth};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};

use super::{acked, existing_is_fine, refused_with};
use crate::error::{Error, Result};

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

    /// Sends a request rtnetlink has no builder for, through [`acked`]; `what` names it.
    pub(super) async fn send(&self, message: RouteNetlinkMessage, flags: u16, what: String) -> Result<()> {
        acked(self.handle, message, flags).await.map_err(self.fail(what))
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

    /// `ip link add <name> address <mac> type bridge forward_delay 0 mcast_snooping 0` and up.
    pub(crate) async fn add_bridge(&self, index: u32, name: &str, mac: [u8; 6]) -> Result<()> {
        let message = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Bridge)
            .name(name.to_string())
            .index(index)
            .address(mac.to_vec())
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

    /// `ip -s link show dev <index>`: the interface's 64-bit statistics (`IFLA_STATS64`).
    pub(crate) async fn stats64(&self, index: u32) -> Result<rtnetlink::packet_route::link::Stats64> {
        use rtnetlink::packet_route::link::LinkAttribute;
        let what = "ip -s link show";
        let mut dump = self.handle.link().get().match_index(index).execute();
        let mut found = None;
        while let Some(message) = dump.next().await {
            let message = message.map_err(self.fail(what))?;
            found = found.or_else(|| {
                message.attributes.iter().find_map(|attribute| match attribute {
                    LinkAttribute::Stats64(stats) => Some(*stats),
                    _ => None,
                })
            });
        }
        Ok(found.unwrap_or_default())
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
            Err(error) if refused_with(&error, libc::ENOENT) => Ok(()),
            other => other,
        }
    }

    /// `ip route add <to> via <via>`, where the route may already exist (`ip route replace`
    /// would also overwrite a route the test changed).
    pub(crate) async fn add_route_again(&self, to: IpNet, via: IpAddr) -> Result<()> {
        existing_is_fine(self.add_route(to, via).await)
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

    /// `ip link set dev <index> addrgenmode none`: the interface gets no IPv6 link-local
    /// address (and so sends no router solicitation or MLD report). Bring-up sends it for each
    /// veth end of a topology without IPv6 before the pair has carrier, in place of
    /// `net.ipv6.conf.default.addr_gen_mode`: the kernel's handler of that sysctl only tries
    /// RTNL and restarts the write for as long as another namespace holds it, a busy loop while
    /// other tests run, where a netlink request waits for RTNL. It must be a request of its own,
    /// before the one that sets the interface up: sent in that same request, it comes too late.
    pub(crate) async fn set_no_link_local(&self, index: u32, name: &str) -> Result<()> {
        use rtnetlink::packet_route::link::{AfSpecInet6, AfSpecUnspec, In6AddrGenMode, LinkAttribute};
        let mut message = LinkUnspec::new_with_index(index).build();
        message.attributes.push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![
            AfSpecInet6::AddrGenMode(In6AddrGenMode::None),
        ])]));
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(self.fail(format!("ip link set {name} addrgenmode none")))
    }

    /// `ip link del dev <name>` (a veth's peer goes with it).
    pub(crate) async fn delete_link(&self, index: u32, name: &str) -> Result<()> {
        self.handle.link().del(index).execute().await.map_err(self.fail(format!("ip link del dev {name}")))
    }

    /// `ip addr del <addr> dev <name>`.
    pub(crate) async fn delete_address(&self, index: u32, name: &str, addr: IpNet) -> Result<()> {
        let message = self.handle.address().add(index, addr.addr(), addr.prefix_len()).message_mut().clone();
        self.handle
            .address()
            .del(message)
            .execute()
            .await
            .map_err(self.fail(format!("ip addr del {addr} dev {name}")))
    }

    /// `ip route replace <to> via <via>`.
    pub(crate) async fn replace_route(&self, to: IpNet, via: IpAddr) -> Result<()> {
        let what = format!("ip route replace {to} via {via}");
        let message = route_message(to, via, &what)?;
        self.handle.route().add(message).replace().execute().await.map_err(self.fail(what))
    }

    /// `ip route del <to> via <via>`; a route the kernel deleted already (with its interface
    /// or its gateway's subnet) is fine.
    pub(crate) async fn delete_route(&self, to: IpNet, via: IpAddr) -> Result<()> {
        let what = format!("ip route del {to} via {via}");
        let message = route_message(to, via, &what)?;
        match self.handle.route().del(message).execute().await.map_err(self.fail(what)) {
            Err(error) if refused_with(&error, libc::ESRCH) || refused_with(&error, libc::ENOENT) => Ok(()),
            other => other,
        }
    }
}

/// The message of a route to `to` via `via`; `what` names the request in the error.
fn route_message(to: IpNet, via: IpAddr, what: &str) -> Result<rtnetlink::packet_route::route::RouteMessage> {
    Ok(RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(to.addr(), to.prefix_len())
        .and_then(|builder| builder.gateway(via))
        .map_err(|error| Error::io(what.to_string(), io::Error::new(io::ErrorKind::InvalidInput, error)))?
        .build())
}

/// One end of a veth pair to create.
pub(crate) struct VethEnd {
    pub(crate) node: String,
    pub(crate) name: String,
    pub(crate) index: u32,
    pub(crate) mac: [u8; 6],
    pub(crate) netns: RawFd,
    pub(crate) mtu: Option<u32>,
    /// The bridge to enslave this end to, in its own namespace.
    pub(crate) controller: Option<u32>,
}

fn end_message<T>(builder: LinkMessageBuilder<T>, end: &VethEnd) -> LinkMessageBuilder<T> {
    let mut builder = builder.name(end.name.to_string()).index(end.index).address(end.mac.to_vec());
    if let Some(mtu) = end.mtu {
        builder = builder.mtu(mtu);
    }
    builder
}
