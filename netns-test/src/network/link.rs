//! A link of the running network: its two ends, down and up, the conditions it carries, and
//! flapping.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ipnet::IpNet;

use super::wait::{Stop, Wait, poll_until};
use super::{Interface, Network, Node};
use crate::conditions::{Conditions, Direction, DirectionCounters};
use crate::error::{Error, Result, name_list};
use crate::impair::Backend;
use crate::netlink::At;
use crate::topology::{NodeKind, Plan, mac_for};

/// A link of the network, between two node interfaces.
#[derive(Clone, Debug)]
pub struct LinkHandle {
    pub(super) network: Network,
    /// The plan's index of the link.
    pub(super) link: usize,
    /// The ends in the order they were asked for (`net.link(a, b)`).
    pub(super) ends: [(Node, String); 2],
}

impl Network {
    /// The link between `a` and `b`, each written `node` or `node:interface`:
    /// `net.link("client", "r1")`, or, where two nodes are joined by several links,
    /// `net.link("a:eth1", "b")` or `net.link("a:eth1", "b:eth0")`. A host's link to a switch
    /// is `net.link("h1", "sw")`: the switch is a node like any other, its port the interface.
    /// The handle's ends are in the order asked for.
    ///
    /// # Panics
    /// When no link, or more than one, matches; [`try_link`](Self::try_link) returns the
    /// error instead.
    #[track_caller]
    pub fn link(&self, a: &str, b: &str) -> LinkHandle {
        self.try_link(a, b).unwrap_or_else(|error| panic!("{error}"))
    }

    /// The link between `a` and `b` (see [`link`](Self::link)), or an error.
    ///
    /// # Errors
    /// [`Error::UnknownNode`] or [`Error::UnknownInterface`] for an end that does not exist;
    /// [`Error::UnknownLink`] when no link joins the ends; [`Error::AmbiguousLink`], listing the
    /// candidates with their interfaces, when several do and no interface says which.
    pub fn try_link(&self, a: &str, b: &str) -> Result<LinkHandle> {
        let split = |end: &str| match end.split_once(':') {
            Some((node, iface)) => (node.to_string(), Some(iface.to_string())),
            None => (end.to_string(), None),
        };
        let ((a_node, a_iface), (b_node, b_iface)) = (split(a), split(b));
        let first = self.try_node(&a_node)?;
        let second = self.try_node(&b_node)?;
        for (node, iface) in [(first, &a_iface), (second, &b_iface)] {
            if let Some(iface) = iface {
                node.interface(iface)?;
            }
        }
        let candidates: Vec<&Interface> = first
            .interfaces()
            .iter()
            .filter(|i| i.peer_node() == b_node)
            .filter(|i| a_iface.as_ref().is_none_or(|name| i.name() == name))
            .filter(|i| b_iface.as_ref().is_none_or(|name| i.peer_name() == name))
            .collect();
        let ends = |i: &Interface| {
            [format!("{a_node}:{}", i.name()), format!("{}:{}", i.peer_node(), i.peer_name())]
        };
        match candidates[..] {
            [iface] => Ok(LinkHandle {
                network: self.clone(),
                link: iface.link,
                ends: [
                    (first.clone(), iface.name().to_string()),
                    (second.clone(), iface.peer_name().to_string()),
                ],
            }),
            [] => Err(Error::UnknownLink {
                a: a.to_string(),
                b: b.to_string(),
                node: a_node.clone(),
                links: first.interfaces().iter().map(|i| ends(i).join(" – ")).collect(),
            }),
            _ => Err(Error::AmbiguousLink {
                a: a.to_string(),
                b: b.to_string(),
                candidates: candidates.into_iter().map(ends).collect(),
            }),
        }
    }
}

impl LinkHandle {
    /// The two ends: each node and its interface name.
    pub fn ends(&self) -> [(&Node, &str); 2] {
        [(&self.ends[0].0, self.ends[0].1.as_str()), (&self.ends[1].0, self.ends[1].1.as_str())]
    }

    pub(super) fn describe(&self) -> String {
        format!(
            "the link {}:{} – {}:{}",
            self.ends[0].0.name(),
            self.ends[0].1,
            self.ends[1].0.name(),
            self.ends[1].1
        )
    }

    /// Resolves, from the topology, the neighbour entries that nodes on one side of this link
    /// hold unresolved (incomplete or failed) for addresses on the other side: a cut or a
    /// link that was down leaves them waiting for the kernel's next retry.
    pub(super) fn refresh_neighbours(&self) -> Result<()> {
        let plan = self.network.plan();
        let sides = link_sides(plan, self.link);
        // For each node on either side: the neighbours it may hold on its interfaces there,
        // the interfaces across the link.
        let mut work: Vec<(usize, Vec<Neighbour>)> = Vec::new();
        for (here, there) in [(&sides[0], &sides[1]), (&sides[1], &sides[0])] {
            let across: Vec<(IpAddr, [u8; 6])> =
                there.iter().flat_map(|&(node, iface)| neighbour_addresses(plan, node, iface)).collect();
            for &(node, iface) in here {
                let index = plan.nodes[node].ifaces[iface].index;
                let entries = across.iter().map(|&(addr, mac)| Neighbour { index, addr, mac });
                match work.iter_mut().find(|(n, _)| *n == node) {
                    Some((_, known)) => known.extend(entries),
                    None => work.push((node, entries.collect())),
                }
            }
        }
        let work: Vec<(Node, Vec<Neighbour>)> =
            work.into_iter().map(|(node, known)| (self.network.nodes()[node].clone(), known)).collect();
        self.network.netlink_rt().block_on(async move {
            futures_util::future::try_join_all(work.iter().map(|(node, known)| async move {
                let at = At { node: node.name(), handle: &node.netlink().handle };
                for (index, addr) in at.unresolved_neighbours().await? {
                    if let Some(known) = known.iter().find(|k| (k.index, k.addr) == (index, addr)) {
                        at.resolve_neighbour(index, addr, known.mac).await?;
                    }
                }
                Ok::<(), Error>(())
            }))
            .await
            .map(drop)
        })
    }

    /// Sets both ends administratively down (`ip link set <dev> down`): unlike a cut, the
    /// nodes see it (routes over the link go away, sends fail at once).
    ///
    /// # Errors
    /// A netlink failure.
    pub fn down(&self) -> Result<()> {
        self.set_up(false)
    }

    /// Sets both ends up again, waits until the kernel reports the link ready, puts back the
    /// topology's routes through the link (the kernel deleted them with the link), and
    /// resolves the neighbour entries left waiting across it (as [`cut`](Self::cut) does when
    /// it heals), so that the link carries the next packet at once.
    ///
    /// # Errors
    /// A netlink failure, or [`Error::Timeout`] when the carrier does not come back.
    pub fn up(&self) -> Result<()> {
        self.set_up(true)?;
        // The carrier only: a link may go down and up while it is cut, and stays cut.
        self.wait_until(false).wait()?;
        self.restore_routes()?;
        self.refresh_neighbours()
    }

    fn restore_routes(&self) -> Result<()> {
        let plan = self.network.plan();
        for (node, ifname) in &self.ends {
            let iface = node.interface(ifname)?;
            let subnets: Vec<IpNet> = iface.addrs().iter().map(IpNet::trunc).collect();
            let spec =
                plan.nodes.iter().find(|spec| spec.name == node.name()).expect("nodes come from the plan");
            let routes: Vec<(IpNet, IpAddr)> = spec
                .routes
                .iter()
                .filter(|route| subnets.iter().any(|subnet| subnet.contains(&route.via)))
                .map(|route| (route.to, route.via))
                .collect();
            let netlink = node.netlink().clone();
            let name = node.name().to_string();
            node.netlink_rt().block_on(async move {
                let at = At { node: &name, handle: &netlink.handle };
                for (to, via) in routes {
                    at.add_route_again(to, via).await?;
                }
                Ok::<(), Error>(())
            })?;
        }
        Ok(())
    }

    /// The direction of the plan's link that leaves `node`.
    fn direction_from(&self, node: &str) -> Result<Direction> {
        let plan = self.network.plan();
        let link = &plan.links[self.link];
        let names = [&plan.nodes[link.ends[0].0].name, &plan.nodes[link.ends[1].0].name];
        if names[0] == node {
            Ok(Direction::AToB)
        } else if names[1] == node {
            Ok(Direction::BToA)
        } else {
            Err(Error::UnknownNode {
                name: node.to_string(),
                known: name_list(names.iter().map(|n| n.as_str())),
            })
        }
    }

    /// The backend that carries this link's conditions.
    fn backend(&self) -> Result<&Backend> {
        let carried = self.network.plan().links[self.link].wire.is_some();
        match self.network.backend() {
            Some(backend) if carried => Ok(backend),
            _ => Err(Error::Unsupported {
                feature: format!("changing the conditions of {}", self.describe()),
                reason: "the link was built without conditions; give it some in the topology \
                         (`Link::conditions(Conditions::new())` for a perfect link that may change later)"
                    .into(),
            }),
        }
    }

    /// Changes the conditions of both directions, from the next frame on.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a link built without conditions; invalid conditions.
    pub fn set_conditions(&self, conditions: Conditions) -> Result<()> {
        let backend = self.backend()?;
        for direction in Direction::BOTH {
            backend.set_conditions(
                self.network.plan(),
                self.network.netlink_rt(),
                self.link,
                direction,
                conditions.clone(),
            )?;
        }
        Ok(())
    }

    /// Changes the conditions of the direction that leaves `node`, from the next frame on.
    ///
    /// # Errors
    /// As [`set_conditions`](Self::set_conditions); a node that is not an end of the link.
    pub fn set_conditions_from(&self, node: &str, conditions: Conditions) -> Result<()> {
        let direction = self.direction_from(node)?;
        self.backend()?.set_conditions(
            self.network.plan(),
            self.network.netlink_rt(),
            self.link,
            direction,
            conditions,
        )
    }

    /// What the link engine has done to the frames leaving `node`: carried, lost, queued,
    /// duplicated, corrupted, reordered.
    ///
    /// # Errors
    /// A link built without conditions, a node that is not an end, or netem carrying the link
    /// (only the user-space engine counts).
    pub fn counters_from(&self, node: &str) -> Result<DirectionCounters> {
        let direction = self.direction_from(node)?;
        Ok(self.backend()?.counters(self.link)?[direction.index()])
    }

    /// Makes the link flap: down for `down`, up for `up`, again and again, from a background
    /// thread, until the guard is dropped; the link is then up, with its routes. The nodes see
    /// each change, as with [`down`](Self::down) and [`up`](Self::up).
    ///
    /// # Errors
    /// The background thread cannot be started.
    pub fn flap(&self, down: Duration, up: Duration) -> Result<Flap> {
        let link = self.clone();
        let stop = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let signal = std::sync::Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("netns-test-flap".into())
            .spawn(move || -> Result<()> {
                let (lock, changed) = &*signal;
                // Sleeps that end early when the guard is dropped.
                let pause = |length: Duration| -> bool {
                    let stopped = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let (stopped, _) = changed
                        .wait_timeout_while(stopped, length, |stopped| !*stopped)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    *stopped
                };
                loop {
                    link.down()?;
                    let stopped = pause(down);
                    link.up()?;
                    if stopped || pause(up) {
                        return Ok(());
                    }
                }
            })
            .map_err(|e| Error::io("starting the flap thread", e))?;
        Ok(Flap { stop, thread: Some(thread) })
    }

    fn set_up(&self, up: bool) -> Result<()> {
        for (node, ifname) in &self.ends {
            let iface = node.interface(ifname)?;
            let (index, name) = (iface.index(), ifname.clone());
            let netlink = node.netlink().clone();
            let node_name = node.name().to_string();
            node.netlink_rt().block_on(async move {
                At { node: &node_name, handle: &netlink.handle }.set_link_up(index, &name, up).await
            })?;
        }
        Ok(())
    }

    /// Waits until the link carries traffic: both ends up with carrier, the kernel done
    /// activating them, and no [`cut`](Self::cut) in place. (A cut link keeps its carrier, but
    /// carries nothing until the cut heals.) After [`up`](Self::up) returns on a link that is
    /// not cut, or a cut heals, it is ready at once.
    pub fn ready(&self) -> Wait {
        self.wait_until(true)
    }

    /// Waits until both ends are up with carrier and, when `uncut`, until no cut is in place.
    fn wait_until(&self, uncut: bool) -> Wait {
        let ends: Vec<(Node, u32)> = self
            .ends
            .iter()
            .filter_map(|(node, ifname)| node.interface(ifname).ok().map(|i| (node.clone(), i.index())))
            .collect();
        let (network, link) = (self.network.clone(), self.link);
        let what =
            if uncut { "to carry traffic (up with carrier, and not cut)" } else { "to be up with carrier" };
        Wait::new(
            self.ends[0].0.netlink_rt().handle(),
            format!("{} {what}", self.describe()),
            move |deadline| {
                Box::pin(async move {
                    for (node, index) in ends {
                        let netlink = node.netlink();
                        netlink
                            .links
                            .wait(&netlink.handle, index, deadline, |status| status.ready())
                            .await
                            .map_err(|_| Stop::DeadlinePassed)?;
                    }
                    if !uncut {
                        return Ok(());
                    }
                    // Cuts are this process's own doing, with no kernel notification to wait on.
                    poll_until(deadline, || {
                        std::future::ready(Ok(network.cuts(link).load(Ordering::Acquire) == 0))
                    })
                    .await
                })
            },
        )
    }
}

/// A neighbour a node may have to resolve: on its interface `index`, address `addr` at `mac`.
struct Neighbour {
    index: u32,
    addr: IpAddr,
    mac: [u8; 6],
}

/// The interfaces of hosts and routers on either side of plan link `link`: each end, or, for
/// an end on a switch, every host and router interface reachable through switches from it
/// without crossing the link.
fn link_sides(plan: &Plan, link: usize) -> [Vec<(usize, usize)>; 2] {
    let side = |start: (usize, usize)| {
        let mut members = Vec::new();
        let mut switches = Vec::new();
        let mut pending = vec![(start, link)];
        while let Some(((node, iface), through)) = pending.pop() {
            if plan.nodes[node].kind != NodeKind::Switch {
                members.push((node, iface));
                continue;
            }
            if switches.contains(&node) {
                continue;
            }
            switches.push(node);
            for port in &plan.nodes[node].ifaces {
                if port.link == through || port.link == link {
                    continue;
                }
                let ends = plan.links[port.link].ends;
                let far = if ends[0].0 == node { ends[1] } else { ends[0] };
                pending.push((far, port.link));
            }
        }
        members
    };
    let ends = plan.links[link].ends;
    [side(ends[0]), side(ends[1])]
}

/// The addresses interface `iface` of `node` answers for, with its MAC: the topology's, and
/// the IPv6 link-local address the kernel derives from the MAC (EUI-64) where the topology has
/// IPv6.
fn neighbour_addresses(plan: &Plan, node: usize, iface: usize) -> Vec<(IpAddr, [u8; 6])> {
    let spec = &plan.nodes[node].ifaces[iface];
    let mac = mac_for(spec.index);
    let mut addrs: Vec<(IpAddr, [u8; 6])> = spec.addrs.iter().map(|addr| (addr.addr(), mac)).collect();
    if plan.ipv6 {
        let [a, b, c, d, e, f] = mac;
        let link_local =
            std::net::Ipv6Addr::from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, a ^ 0x02, b, c, 0xff, 0xfe, d, e, f]);
        addrs.push((IpAddr::V6(link_local), mac));
    }
    addrs
}

/// A flapping link; dropping it stops the flapping with the link up.
#[derive(Debug)]
#[must_use = "the link stops flapping as soon as this guard is dropped"]
pub struct Flap {
    stop: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Flap {
    /// Stops the flapping now and reports any error the flapping met.
    ///
    /// # Errors
    /// The first netlink failure of the flapping thread.
    pub fn stop(mut self) -> Result<()> {
        self.finish()
    }

    fn finish(&mut self) -> Result<()> {
        let (lock, changed) = &*self.stop;
        *lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        changed.notify_all();
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Ok(()),
        }
    }
}

impl Drop for Flap {
    fn drop(&mut self) {
        if let Err(error) = self.finish() {
            eprintln!("netns-test: the flapping link failed: {error:?}");
        }
    }
}
