//! Changing a running network: links down and up, cuts and partitions that heal when their
//! guard drops, and readiness waits that replace sleeps.

use std::future::{Future, IntoFuture};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use ipnet::IpNet;

use crate::conditions::{Conditions, Direction, DirectionCounters};
use crate::error::{Error, Result, name_list};
use crate::impair::Backend;
use crate::netlink::At;
use crate::netlink::tc::{SockFilter, cbpf};
use crate::network::{Interface, Network, Node};
use crate::topology::{NodeKind, Plan, mac_for};

/// How long a [`Wait`] waits unless told otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// tc filter priorities for cuts and partitions, unique in the process so that guards never
/// remove each other's filters.
static NEXT_PRIO: AtomicU16 = AtomicU16::new(1);

fn next_prio() -> u16 {
    NEXT_PRIO.fetch_add(1, Ordering::Relaxed)
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A readiness condition to wait for, with a deadline: call [`wait`](Self::wait) to block, or
/// `.await` it in async code. Either way the condition is checked on the network's control
/// thread, so waiting never stalls a runtime the test body uses.
#[must_use = "a Wait does nothing until `.wait()` is called or it is awaited"]
pub struct Wait {
    what: String,
    timeout: Duration,
    netlink_rt: tokio::runtime::Handle,
    check: Box<dyn FnOnce(Instant) -> BoxFuture<Result<()>> + Send>,
}

impl std::fmt::Debug for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wait").field("what", &self.what).field("timeout", &self.timeout).finish()
    }
}

impl Wait {
    fn new(
        netlink_rt: &tokio::runtime::Handle,
        what: String,
        check: impl FnOnce(Instant) -> BoxFuture<Result<()>> + Send + 'static,
    ) -> Wait {
        Wait { what, timeout: DEFAULT_WAIT, netlink_rt: netlink_rt.clone(), check: Box::new(check) }
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
            Err(Error::Timeout { .. }) => Err(Error::Timeout { what: self.what, after: self.timeout }),
            other => other,
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
async fn poll_until<F>(deadline: Instant, mut check: impl FnMut() -> F) -> Result<()>
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
            return Err(Error::Timeout { what: String::new(), after: Duration::ZERO });
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
        interval = (interval * 2).min(Duration::from_millis(10));
    }
}

/// A link of the network, between two node interfaces.
#[derive(Clone, Debug)]
pub struct LinkHandle {
    network: Network,
    /// The plan's index of the link.
    link: usize,
    /// The ends in the order they were asked for (`net.link(a, b)`).
    ends: [(Node, String); 2],
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

    /// Splits the network: every node listed in one group stops receiving IP packets from the
    /// nodes of the other groups, silently (as a firewall dropping them would), until the
    /// returned guard is dropped or [`heal`](Partition::heal)ed. Nodes in no group (routers,
    /// switches) keep forwarding for everyone.
    ///
    /// ```no_run
    /// # fn f(net: &netns_test::Network) -> netns_test::Result<()> {
    /// let split = net.partition(&[&["n1"], &["n2", "n3"]])?;
    /// // n1 and the others cannot reach each other here.
    /// split.heal()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidPartition`] naming the node and the groups for an unknown node, a node
    /// listed twice or a switch listed; a netlink failure.
    pub fn partition(&self, groups: &[&[&str]]) -> Result<Partition> {
        let invalid = |node: &str, reason: String| Error::InvalidPartition {
            node: node.to_string(),
            groups: format!("{groups:?}"),
            reason,
        };
        let mut members: Vec<(usize, Node)> = Vec::new();
        for (group, names) in groups.iter().enumerate() {
            for name in *names {
                let node = self.try_node(name).map_err(|_| {
                    invalid(
                        name,
                        format!(
                            "there is no node `{name}`; the network has {}",
                            name_list(self.nodes().iter().map(Node::name))
                        ),
                    )
                })?;
                if node.kind() == NodeKind::Switch {
                    return Err(invalid(
                        name,
                        format!(
                            "`{name}` is a switch, which forwards for every group; list hosts and routers"
                        ),
                    ));
                }
                if let Some((first, _)) = members.iter().find(|(_, n)| n.name() == *name) {
                    let place = if *first == group {
                        format!("listed twice in group {}", group + 1)
                    } else {
                        format!("in groups {} and {}", first + 1, group + 1)
                    };
                    return Err(invalid(
                        name,
                        format!("node `{name}` is {place}; a node belongs to one group"),
                    ));
                }
                members.push((group, node.clone()));
            }
        }
        let mut filters = Vec::new();
        let prio = next_prio();
        for (group, node) in &members {
            let foreign: Vec<IpAddr> =
                members.iter().filter(|(g, _)| g != group).flat_map(|(_, other)| other.addrs()).collect();
            if foreign.is_empty() {
                continue;
            }
            let program = cbpf::drop_from(&foreign);
            for iface in node.interfaces() {
                filters.push(Filter {
                    node: node.clone(),
                    index: iface.index(),
                    name: iface.name().to_string(),
                    prio,
                });
            }
            install(node, &filters[filters.len() - node.interfaces().len()..], &program)?;
        }
        Ok(Partition { filters, healed: false })
    }
}

/// One installed ingress filter.
#[derive(Clone, Debug)]
struct Filter {
    node: Node,
    index: u32,
    name: String,
    prio: u16,
}

fn install(node: &Node, filters: &[Filter], program: &[SockFilter]) -> Result<()> {
    let netlink = node.netlink().clone();
    let name = node.name().to_string();
    let filters: Vec<Filter> = filters.to_vec();
    let program = program.to_vec();
    node.netlink_rt().block_on(async move {
        let at = At { node: &name, handle: &netlink.handle };
        for filter in &filters {
            at.ensure_clsact(filter.index, &filter.name).await?;
            at.add_ingress_filter(filter.index, &filter.name, filter.prio, &program).await?;
        }
        Ok(())
    })
}

fn remove(filters: &[Filter]) -> Result<()> {
    let mut first_error = None;
    for filter in filters {
        let netlink = filter.node.netlink().clone();
        let name = filter.node.name().to_string();
        let (index, ifname, prio) = (filter.index, filter.name.clone(), filter.prio);
        let result = filter.node.netlink_rt().block_on(async move {
            At { node: &name, handle: &netlink.handle }.del_ingress_filter(index, &ifname, prio).await
        });
        if let Err(error) = result {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// A partition of the network; dropping it heals the network.
#[derive(Debug)]
#[must_use = "the partition heals as soon as this guard is dropped"]
pub struct Partition {
    filters: Vec<Filter>,
    healed: bool,
}

impl Partition {
    /// Heals the partition now, reporting any error (dropping the guard heals too, but can
    /// only print an error).
    ///
    /// # Errors
    /// A netlink failure removing a filter.
    pub fn heal(mut self) -> Result<()> {
        self.healed = true;
        remove(&self.filters)
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        if !self.healed {
            if let Err(error) = remove(&self.filters) {
                eprintln!("netns-test: healing a partition failed: {error:?}");
            }
        }
    }
}

/// A cut link; dropping it restores the link.
#[derive(Debug)]
#[must_use = "the link is restored as soon as this guard is dropped"]
pub struct Cut {
    link: LinkHandle,
    filters: Vec<Filter>,
    healed: bool,
}

impl Cut {
    /// Restores the link now, reporting any error. When this returns, the link carries
    /// traffic again at once (see [`LinkHandle::cut`]).
    ///
    /// # Errors
    /// A netlink failure removing a filter or refreshing a neighbour entry.
    pub fn heal(mut self) -> Result<()> {
        self.restore()
    }

    fn restore(&mut self) -> Result<()> {
        self.healed = true;
        let removed = remove(&self.filters);
        let refreshed = self.link.refresh_neighbours();
        self.link.network.cuts(self.link.link).fetch_sub(1, Ordering::Release);
        removed.and(refreshed)
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        if !self.healed {
            if let Err(error) = self.restore() {
                eprintln!("netns-test: restoring a cut link failed: {error:?}");
            }
        }
    }
}

impl LinkHandle {
    /// The two ends: each node and its interface name.
    pub fn ends(&self) -> [(&Node, &str); 2] {
        [(&self.ends[0].0, self.ends[0].1.as_str()), (&self.ends[1].0, self.ends[1].1.as_str())]
    }

    fn describe(&self) -> String {
        format!(
            "the link {}:{} – {}:{}",
            self.ends[0].0.name(),
            self.ends[0].1,
            self.ends[1].0.name(),
            self.ends[1].1
        )
    }

    /// Cuts the link silently: both ends stay up with carrier, but every frame is dropped on
    /// arrival, as an unplugged cable somewhere in the middle would. The link comes back when
    /// the guard drops (or [`heal`](Cut::heal)s), ready to carry the next packet at once: the
    /// neighbour entries that nodes on either side were resolving across the link during the
    /// cut (or failed to resolve) are resolved from the topology's addresses, as an answer
    /// would, instead of waiting for the kernel's next retry (up to a second, by default).
    /// While the link is cut, [`ready`](Self::ready) waits.
    ///
    /// # Errors
    /// A netlink failure installing the filters.
    pub fn cut(&self) -> Result<Cut> {
        let prio = next_prio();
        // Counted before the first filter goes in, so that `ready` never takes a cut link for
        // a ready one; the guard uncounts it when it heals, and heals what was installed when
        // an error here drops it.
        self.network.cuts(self.link).fetch_add(1, Ordering::Release);
        let mut guard = Cut { link: self.clone(), filters: Vec::new(), healed: false };
        for (node, ifname) in &self.ends {
            let iface = node.interface(ifname)?;
            let filter = Filter { node: node.clone(), index: iface.index(), name: ifname.clone(), prio };
            install(node, std::slice::from_ref(&filter), &cbpf::drop_all())?;
            guard.filters.push(filter);
        }
        Ok(guard)
    }

    /// Resolves, from the topology, the neighbour entries that nodes on one side of this link
    /// hold unresolved (incomplete or failed) for addresses on the other side: a cut or a
    /// link that was down leaves them waiting for the kernel's next retry.
    fn refresh_neighbours(&self) -> Result<()> {
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

    fn carrier(&self) -> Result<&Backend> {
        let carried = self.network.plan().links[self.link].wire.is_some();
        match self.network.carrier() {
            Some(carrier) if carried => Ok(carrier),
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
        let carrier = self.carrier()?;
        for direction in Direction::BOTH {
            carrier.set_conditions(
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
        self.carrier()?.set_conditions(
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
        Ok(self.carrier()?.counters(self.link)?[direction.index()])
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
                            .map_err(|_| Error::Timeout { what: String::new(), after: Duration::ZERO })?;
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
        let netlink = self.netlink().clone();
        let what = format!("address {addr} to be usable in node `{}`", self.name());
        Wait::new(self.netlink_rt().handle(), what, move |deadline| {
            Box::pin(async move {
                poll_until(deadline, || async { Ok(address_usable(&netlink.handle, addr).await) }).await
            })
        })
    }

    /// Waits until this node has a route to `destination` (a connected subnet, a static or
    /// default route).
    pub fn route_ready(&self, destination: IpAddr) -> Wait {
        let netlink = self.netlink().clone();
        let what = format!("a route to {destination} in node `{}`", self.name());
        Wait::new(self.netlink_rt().handle(), what, move |deadline| {
            Box::pin(async move {
                poll_until(deadline, || async { Ok(has_route(&netlink.handle, destination).await) }).await
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
