//! The changes themselves, as the test calls them: [`Network::add_link`],
//! [`Network::renumber`], [`Network::replug`], [`LinkHandle::remove`] and
//! [`Node::set_default_route`]. Each validates and plans first (`State::plan`), then changes
//! the kernel (`Paths`' helpers), then records the new state and the timeline event.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use ipnet::IpNet;

use super::{Paths, addresses, block_on, check_addable, drop_stranded_routes, pin_names, subject};
use crate::error::{Error, Result, name_list};
use crate::netlink::At;
use crate::network::{LinkHandle, Network, Node};
use crate::timeline::EventKind;
use crate::topology::{Link, RouteSpec};

impl Network {
    /// Adds a link between two nodes of the running network, as the topology would have made
    /// it: interface names (the next free `ethN` by default), addresses and MTU from `link`.
    /// It is validated as planning validates the topology with this link added (unknown node,
    /// duplicate interface name or address, an address outside its link's subnet, a bad MTU),
    /// and the kernel is touched only once it passes. When the topology uses
    /// [automatic routes](crate::TopologyBuilder::auto_routes), every node's routes become
    /// those of the topology with this link: new routes through it are added, and routes it
    /// shortens are replaced. Returns when both ends are ready to carry traffic. The
    /// addition is on the [timeline](Self::events).
    ///
    /// A link with [conditions](Link::conditions) crosses the middle namespace and the
    /// user-space engine carries it, as the topology's links with conditions are: its
    /// conditions, counters and hooks work the same, its seed is derived from the network's.
    /// That needs a network whose topology has a link with conditions already (the engine
    /// and its namespace exist only then; `Conditions::new()` is a perfect link), and the
    /// engine rather than netem. A capture or outages given with the link are refused (use
    /// [`LinkHandle::capture_from`] and [`LinkHandle::outages`] on the handle), and no static
    /// neighbour entries are made for it (with
    /// [`static_arp`](crate::TopologyBuilder::static_arp), ARP resolves across it as usual).
    ///
    /// ```no_run
    /// # fn f(net: &netns_test::Network) -> netns_test::Result<()> {
    /// use netns_test::Link;
    /// let link = net.add_link(Link::new("client", "r2").addrs("10.0.3.2/24", "10.0.3.1/24"))?;
    /// link.remove()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Topology`] for a link planning refuses; [`Error::Unsupported`] for a capture
    /// or outages, conditions in a network without a link engine, or an IPv6 address in a
    /// network built without any; a netlink failure; [`Error::Timeout`] when the link does
    /// not come up.
    pub fn add_link(&self, link: Link) -> Result<LinkHandle> {
        check_addable(&link)?;
        let paths = self.paths();
        let mut state = paths.state();
        let (mut model, mut keys) = (state.model.clone(), state.keys.clone());
        let key = state.cuts.len();
        model.links.push(link);
        keys.push(key);
        let mut change = state.plan(model, keys)?;
        let position = change.keys.len() - 1;
        pin_names(&mut change, position);
        paths.create_link(&mut state, &change, position, key, self.backend())?;
        paths.apply_all_routes(&state.plan, &change.plan)?;
        Paths::rewrite_hosts(&change.plan)?;
        self.timeline().record(
            EventKind::LinkAdded,
            subject(&change.plan, position),
            addresses(&change.plan, position),
        );
        let nodes = change.plan.links[position].ends.map(|(node, _)| node);
        state.cuts.push(Arc::new(AtomicUsize::new(0)));
        state.commit(change);
        drop(state);
        LinkHandle::new(self, key, nodes.map(|node| &self.nodes()[node]))
    }

    /// Replaces address `old` of node `node` with `new` (both in CIDR notation, as the
    /// topology writes them), as a DHCP renewal does: the new address is added first (IPv6
    /// without duplicate-address detection, so it is usable at once), then the old one
    /// deleted, with `promote_secondaries` set in the node so that a new IPv4 address of the
    /// same subnet survives the old one. The change is validated as planning validates the
    /// topology with the new address (a bad or duplicate address, or one outside the subnet
    /// the rest of its link uses, is refused before anything changes), and routes follow the
    /// topology renumbered, as [`add_link`](Self::add_link)'s do; static routes through the old
    /// address (a gateway renumbered) go through the new one. The node's interfaces, its
    /// addresses as the pinger resolves them and the hosts file are updated. The change is on
    /// the [timeline](Self::events).
    ///
    /// ```no_run
    /// # fn f(net: &netns_test::Network) -> netns_test::Result<()> {
    /// net.renumber("client", "10.0.1.2/24", "10.0.1.50/24")?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::UnknownNode`]; [`Error::UnknownAddress`] when the node has no address `old`;
    /// [`Error::Topology`] for a new address planning refuses; a netlink failure.
    pub fn renumber(&self, node: &str, old: &str, new: &str) -> Result<()> {
        let target = self.try_node(node)?.clone();
        let paths = self.paths();
        let mut state = paths.state();
        let wanted: Option<IpNet> = old.trim().parse().ok();
        let mut model = state.model.clone();
        let found = model.links.iter_mut().enumerate().find_map(|(position, link)| {
            let end = link.ends.iter_mut().find(|end| end.node == node)?;
            let slot = end
                .addrs
                .iter()
                .position(|addr| addr.trim().parse::<IpNet>().ok() == wanted && wanted.is_some())?;
            Some((position, end, slot))
        });
        let Some((position, end, slot)) = found else {
            return Err(Error::UnknownAddress {
                node: node.to_string(),
                address: old.to_string(),
                known: name_list(
                    target
                        .interfaces()
                        .iter()
                        .flat_map(|i| i.addrs().iter().map(ToString::to_string))
                        .collect::<Vec<_>>()
                        .iter()
                        .map(String::as_str),
                ),
            });
        };
        end.addrs[slot] = new.to_string();
        let ifname = end.ifname.clone().unwrap_or_default();
        // Static routes through the old address (a renumbered gateway) go through the new one.
        if let (Some(old), Ok(new)) = (wanted, new.trim().parse::<IpNet>()) {
            for route in &mut model.routes {
                if route.via.trim().parse::<IpAddr>() == Ok(old.addr())
                    && old.addr().is_ipv4() == new.addr().is_ipv4()
                {
                    route.via = new.addr().to_string();
                }
            }
        }
        let change = state.plan(model, state.keys.clone())?;
        let (n, iface) =
            *change.plan.links[position].ends.iter().find(|(n, _)| *n == target.index()).expect("an end");
        let new_addr = change.plan.nodes[n].ifaces[iface].addrs[slot];
        let old_addr = state.plan.nodes[n].ifaces[iface].addrs[slot];
        let live = target.interface(&ifname)?;
        if new_addr.addr().is_ipv4() {
            target
                .run(|| crate::ns::setup::write_sysctl("net.ipv4.conf.all.promote_secondaries", "1"))
                .map_err(|e| {
                    Error::io(format!("setting net.ipv4.conf.all.promote_secondaries=1 in node `{node}`"), e)
                })?;
        }
        let (name, handle, index) = (node.to_string(), target.netlink().handle.clone(), live.index());
        block_on(&target, async move {
            let at = At { node: &name, handle: &handle };
            at.add_address(index, &ifname, new_addr).await?;
            at.delete_address(index, &ifname, old_addr).await
        })?;
        let addrs = change.plan.nodes[n].ifaces[iface].addrs.clone();
        let key = live.link;
        target.change_interfaces(|interfaces| {
            if let Some(interface) = interfaces.iter_mut().find(|i| i.link == key) {
                interface.set_addrs(addrs);
            }
        });
        paths.apply_all_routes(&state.plan, &change.plan)?;
        // Routes through the interface that the kernel may have dropped with the old address.
        let (name, handle) = (node.to_string(), target.netlink().handle.clone());
        let through = change.plan.routes_through(n, iface);
        block_on(&target, async move {
            let at = At { node: &name, handle: &handle };
            for route in through {
                at.add_route_again(route.to, route.via).await?;
            }
            Ok(())
        })?;
        Paths::rewrite_hosts(&change.plan)?;
        self.timeline().record(
            EventKind::Renumbered,
            format!("{node}:{}", live.name()),
            format!("{old_addr} → {new_addr}"),
        );
        state.commit(change);
        Ok(())
    }

    /// Moves a host from one link to another in one step, as an uplink switched mid-test
    /// (Wi-Fi to cellular, one router to another): validates the whole move first, then
    /// removes `old` and adds `new`, which must share the moving node with `old`. The moving
    /// node's static routes through the old link's far end (its default route, typically)
    /// are pointed at the new link's far end, address family by address family; automatic
    /// routes follow as [`add_link`](Self::add_link)'s do. Give the new link the node's old
    /// address to keep its connections' addresses (a TCP connection goes on), or a new one
    /// (a connection bound to the old address is cut off, and what migrates is up to the
    /// protocol). Returns the new link's handle; the move is on the [timeline](Self::events).
    ///
    /// ```no_run
    /// # fn f(net: &netns_test::Network) -> netns_test::Result<()> {
    /// use netns_test::Link;
    /// let old = net.link("client", "r1");
    /// let new = net.replug(old, Link::new("client", "r2").addrs("10.0.1.2/24", "10.0.1.1/24"))?;
    /// # drop(new); Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Unsupported`] when the links share no node, or for a link with conditions or
    /// a capture; otherwise as [`add_link`](Self::add_link) and
    /// [`LinkHandle::remove`](LinkHandle::remove).
    pub fn replug(&self, old: LinkHandle, new: Link) -> Result<LinkHandle> {
        check_addable(&new)?;
        let paths = self.paths();
        let mut state = paths.state();
        let old_key = old.key();
        Paths::check_plain(&state, old_key, "replugging")?;
        let Some(old_position) = state.keys.iter().position(|&k| k == old_key) else {
            return Err(gone(&old));
        };
        let old_ends = state.plan.links[old_position].ends;
        let names = old_ends.map(|(node, _)| state.plan.nodes[node].name.clone());
        let Some(moving) = names.iter().position(|name| new.ends.iter().any(|end| &end.node == name)) else {
            return Err(Error::Unsupported {
                feature: format!(
                    "replugging {} into a link between `{}` and `{}`",
                    old.describe(),
                    new.ends[0].node,
                    new.ends[1].node
                ),
                reason: "the new link must have the moving node as one of its ends".into(),
            });
        };
        let moving_name = names[moving].clone();
        let (far_node, far_iface) = old_ends[1 - moving];
        let old_far: Vec<IpAddr> =
            state.plan.nodes[far_node].ifaces[far_iface].addrs.iter().map(IpNet::addr).collect();
        let mut model = state.model.clone();
        let mut keys = state.keys.clone();
        model.links.remove(old_position);
        keys.remove(old_position);
        let new_slot = usize::from(new.ends[0].node != moving_name);
        let new_far: Vec<IpAddr> = new.ends[1 - new_slot]
            .addrs
            .iter()
            .filter_map(|addr| addr.parse::<IpNet>().ok())
            .map(|net| net.addr())
            .collect();
        let old_label = format!("{} – {}", names[0], names[1]);
        for route in model.routes.iter_mut().filter(|route| route.node == moving_name) {
            let Ok(via) = route.via.trim().parse::<IpAddr>() else { continue };
            if old_far.contains(&via) {
                if let Some(next) = new_far.iter().find(|addr| addr.is_ipv4() == via.is_ipv4()) {
                    route.via = next.to_string();
                }
            }
        }
        let key = state.cuts.len();
        model.links.push(new);
        keys.push(key);
        drop_stranded_routes(&mut model);
        let mut change = state.plan(model, keys)?;
        let position = change.keys.len() - 1;
        pin_names(&mut change, position);
        let before = old.subject();
        paths.delete_link(&state, old_position, old_key)?;
        self.timeline().record(EventKind::LinkRemoved, before.clone(), "");
        paths.create_link(&mut state, &change, position, key, self.backend())?;
        paths.apply_all_routes(&state.plan, &change.plan)?;
        Paths::rewrite_hosts(&change.plan)?;
        let after = subject(&change.plan, position);
        self.timeline().record(EventKind::LinkAdded, after.clone(), addresses(&change.plan, position));
        self.timeline().record(EventKind::Replugged, moving_name, format!("{old_label} → {after}"));
        let nodes = change.plan.links[position].ends.map(|(node, _)| node);
        state.cuts.push(Arc::new(AtomicUsize::new(0)));
        state.commit(change);
        drop(state);
        LinkHandle::new(self, key, nodes.map(|node| &self.nodes()[node]))
    }
}

/// The error for a handle of a link removed already.
fn gone(link: &LinkHandle) -> Error {
    Error::Unsupported {
        feature: format!("changing {}", link.describe()),
        reason: "the link was removed".into(),
    }
}

impl LinkHandle {
    /// Deletes the link: its veth pair, both ends at once. When the topology uses
    /// [automatic routes](crate::TopologyBuilder::auto_routes), every node's routes become
    /// those of the topology without this link (routes around it where there is another
    /// path); static routes through it go, as the kernel deletes them with the interface. The
    /// nodes' interfaces, the hosts file and the timeline are updated.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a link with conditions or a capture (the link engine
    /// carries it for the whole test) or one removed already; [`Error::Topology`] when the
    /// topology without it is not valid; a netlink failure.
    pub fn remove(self) -> Result<()> {
        let network = self.network().clone();
        let paths = network.paths();
        let mut state = paths.state();
        let key = self.key();
        Paths::check_plain(&state, key, "removing")?;
        let Some(position) = state.keys.iter().position(|&k| k == key) else {
            return Err(gone(&self));
        };
        let (mut model, mut keys) = (state.model.clone(), state.keys.clone());
        model.links.remove(position);
        keys.remove(position);
        drop_stranded_routes(&mut model);
        let change = state.plan(model, keys)?;
        paths.delete_link(&state, position, key)?;
        paths.apply_all_routes(&state.plan, &change.plan)?;
        Paths::rewrite_hosts(&change.plan)?;
        network.timeline().record(EventKind::LinkRemoved, self.subject(), "");
        state.commit(change);
        Ok(())
    }
}

impl Node {
    /// Sets the node's default route of `via`'s address family (`ip route replace default via
    /// <via>`), replacing the one it had: IPv4 for an IPv4 gateway, IPv6 for an IPv6 one. The
    /// gateway must be on a subnet the node is connected to. The route is a static route of
    /// the topology from now on: later changes keep it, and with automatic routes the node
    /// then gets routes per subnet, as [`default_route`](crate::TopologyBuilder::default_route)
    /// in the topology would give it. The change is on the network's timeline.
    ///
    /// ```no_run
    /// # fn f(net: &netns_test::Network) -> netns_test::Result<()> {
    /// net.node("client").set_default_route("10.0.2.1")?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Topology`] for a gateway that is not an address or not on a connected subnet,
    /// or a switch; a netlink failure.
    pub fn set_default_route(&self, via: impl Into<String>) -> Result<()> {
        let via = via.into();
        let paths = self.paths();
        let mut state = paths.state();
        let mut model = state.model.clone();
        let family = via.trim().parse::<IpAddr>().map(|addr| addr.is_ipv4());
        model.routes.retain(|route| {
            let default = route.node == self.name() && route.to.trim() == "default";
            let same_family = route.via.trim().parse::<IpAddr>().map(|addr| addr.is_ipv4()) == family;
            !(default && (same_family || family.is_err()))
        });
        model.routes.push(RouteSpec {
            node: self.name().to_string(),
            to: "default".into(),
            via: via.clone(),
            location: None,
        });
        let change = state.plan(model, state.keys.clone())?;
        paths.apply_all_routes(&state.plan, &change.plan)?;
        self.record(EventKind::DefaultRoute, self.name().to_string(), format!("via {}", via.trim()));
        state.commit(change);
        Ok(())
    }
}
